#pragma once
// The world's prompt grammar with GenEval-like task tags (docs/world.md), its parser (prompt ->
// clauses), the fixed held-out evaluation set and the training prompts disjoint from it, and the
// scene sampler that draws a scene satisfying a prompt.
//
//   single_object  a red circle
//   two_object     a red circle and a blue square            (different shapes)
//   counting       three green triangles                     (two | three | four, exact count)
//   colors         a red circle and a blue circle            (same shape, different colours)
//   position       a red circle to the left of a blue square (left of | right of | above | below)
//   color_attr     a large yellow square and a small purple circle (colour and size bound)
#include <optional>
#include <string>
#include <vector>

#include "world/scene.h"

namespace rewardgen::world {

enum class Task { single_object, two_object, counting, colors, position, color_attr };
constexpr std::array<Task, 6> kTasks = {Task::single_object, Task::two_object, Task::counting,
                                        Task::colors,        Task::position,   Task::color_attr};
const std::string& name(Task task);
Task task_named(const std::string& name);  // Error listing the tasks

enum class Relation { left_of, right_of, above, below };
const std::string& phrase(Relation relation);  // "to the left of", "above", ...
Relation opposite(Relation relation);           // left_of <-> right_of, above <-> below

// One object a prompt asks for; colour and size are absent where the prompt leaves them free.
struct ObjectSpec {
  Shape shape;
  std::optional<Colour> colour;
  std::optional<Size> size;
  bool operator==(const ObjectSpec& other) const;
  std::string text() const;  // "large red circle"
};

struct Prompt {
  Task task;
  std::vector<ObjectSpec> objects;  // 1 (single_object, counting) or 2
  int count = 1;                    // counting: 2..4
  Relation relation = Relation::left_of;  // position: objects[0] relation objects[1]
  std::string text() const;         // the canonical sentence
};

// The prompt's clauses; Error naming the prompt and the first word the grammar does not accept.
Prompt parse_prompt(const std::string& text);

// Every word the grammar uses (the world tokenizer's training words).
std::vector<std::string> grammar_words();

// Every prompt of a task, in a fixed order.
std::vector<Prompt> all_prompts(Task task);

struct EvalPrompt {
  Task task;
  std::string text;
};
// The held-out evaluation set: for each task a fixed quarter of its prompts (at most 84) is held
// out, and listed in 84 lines per task (504 in all). Tasks with fewer than 84 held-out prompts
// cycle through them, so every task has the same weight (one image per line, seeds differ).
std::vector<EvalPrompt> eval_prompts();
constexpr int kEvalLinesPerTask = 84;
// A task-balanced subset of `prompts`: the first ceil(limit / tasks) lines of each task present.
std::vector<EvalPrompt> balanced_subset(const std::vector<EvalPrompt>& prompts, int64_t limit);
// JSON lines {"task": ..., "prompt": ...}: write and read (Error naming file and line).
std::string eval_prompts_jsonl(const std::vector<EvalPrompt>& prompts);
std::vector<EvalPrompt> read_prompts_file(const std::string& path);

// Training prompts: every prompt of the grammar that is not in the evaluation set, by task.
using TaskWeights = std::array<double, kTasks.size()>;  // in kTasks' order
class TrainingPrompts {
 public:
  // Tasks drawn in proportion to `task_weights` (each finite and >= 0, some > 0; Error otherwise).
  explicit TrainingPrompts(const TaskWeights& task_weights = {1, 1, 1, 1, 1, 1});
  const std::vector<Prompt>& of(Task task) const { return by_task_[static_cast<size_t>(task)]; }
  // A task by the weights, then one of its training prompts uniformly. Equal weights draw the
  // task with one `below`, as before weights existed, so earlier runs draw the same prompts.
  const Prompt& sample(Rng& rng) const;

 private:
  std::array<std::vector<Prompt>, kTasks.size()> by_task_;
  TaskWeights task_weights_;
  double total_weight_ = 0;
  size_t last_drawable_ = 0;  // the last task of weight > 0 (a rounded draw never passes it)
  bool uniform_ = true;
};

// A scene that satisfies `prompt` with exactly the objects it names (free attributes drawn at
// random), on a random background; deterministic in the generator's state.
Scene scene_for_prompt(const Prompt& prompt, Rng& rng);

// A prompt of the same task and objects that the scenes of `prompt` do not satisfy: colours
// swapped or changed, the relation reversed, sizes swapped, the count changed (CLIP's hard
// negatives).
Prompt hard_negative(const Prompt& prompt, Rng& rng);

// Every prompt one edit away from `prompt` that a scene holding exactly its objects does not
// satisfy, in a fixed order: one object's colour, shape or size changed, colours or sizes swapped
// between the objects, the relation reversed, the count changed. Edits that a scene of `prompt`
// would still satisfy (an edited object equal to the other one) or that the grammar refuses (two
// objects of the same shape and colour) are left out.
std::vector<Prompt> one_edit_negatives(const Prompt& prompt);

// A training pair drawn the way pretraining does: a training prompt and a scene for it.
struct ScenePrompt {
  Scene scene;
  Prompt prompt;
};
ScenePrompt sample_training_pair(const TrainingPrompts& prompts, Rng& rng);

}  // namespace rewardgen::world
