#pragma once
// `rewardgen report`: training runs and evaluations as one self-contained HTML page a person can
// look at — every metric in one table beside the teacher's references (DDIM 25 and 50 with CFG, 50
// and 100 network calls an image), reward and accuracy curves as PNG plots, the same prompts and
// seeds drawn by every model with the checker's verdict under each image, each run's config.
// Everything lies in the output folder with relative links: no network, no JavaScript. Finished
// parts (reference evaluations, sampled grid rows) are kept when the report is written again.
#include <string>
#include <vector>

namespace rewardgen {

class Logger;

struct ReportOptions {
  std::vector<std::string> inputs;  // run folders (metrics.jsonl, eval/, generator/) or eval folders (eval.json)
  std::vector<std::string> names;   // a label per input, in order (default: the folder's name)
  std::string out;                  // the report folder
  std::string teacher;              // the reference pipeline ("" : the shipped world teacher)
  std::vector<int64_t> reference_steps = {25, 50};
  double reference_guidance = 3;    // the world teacher's best CFG scale
  int64_t reference_limit = 0;      // task-balanced prompts for the references (0: the whole held-out set)
  int64_t grid_prompts_per_task = 1, grid_seeds = 3;
  std::string device = "cpu";
};

struct ReportResult {
  std::string index_html;                  // the page's path
  int64_t references_evaluated = 0;        // evaluations run now (not reused)
  int64_t grid_rows_sampled = 0;           // grid rows sampled now (not reused)
  std::vector<std::string> plots;          // the PNG plots' paths
};

// Checks every option and reads every input before anything is written; Error naming the bad one.
ReportResult write_report(const ReportOptions& options, const Logger& log);

}  // namespace rewardgen
