#include "core/progress.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "core/log.h"
#include "core/threads.h"
#include "test_util.h"

namespace rewardgen {
namespace {

int count_lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

TEST(Progress, PlainModePrintsAboutTenLinesEndingAtTheTotal) {
  std::ostringstream out;
  {
    ProgressBar bar("train", 100, 0, {ProgressMode::plain, &out, /*plain_interval_s=*/1e9, /*plain_lines=*/10});
    for (int i = 1; i <= 100; ++i) bar.update(i, "loss=0.5");
  }
  const std::string text = out.str();
  EXPECT_EQ(count_lines(text), 10);
  EXPECT_NE(text.find("train: 10/100 (10%)"), std::string::npos) << text;
  EXPECT_NE(text.rfind("train: 100/100 (100%)"), std::string::npos) << text;
  EXPECT_NE(text.find("loss=0.5"), std::string::npos);
  EXPECT_EQ(text.find('\r'), std::string::npos) << "no carriage returns in logs";
}

TEST(Progress, ResumedBarCountsFromItsStartAndPrintsTheFinalStateOnce) {
  std::ostringstream out;
  ProgressBar bar("steps", 50, 40, {ProgressMode::plain, &out, 1e9, 10});
  bar.update(43);
  bar.finish();
  bar.finish();
  EXPECT_EQ(out.str().find("steps: 43/50 (86%)"), 0u) << out.str();
  EXPECT_EQ(count_lines(out.str()), 1);
}

TEST(Progress, LiveModeRedrawsInPlaceAndOffPrintsNothing) {
  std::ostringstream live, off;
  {
    ProgressBar bar("x", 4, 0, {ProgressMode::live, &live});
    bar.update(4);
  }
  EXPECT_EQ(live.str().front(), '\r');
  EXPECT_NE(live.str().find("100% |########################| 4/4"), std::string::npos) << live.str();
  {
    ProgressBar bar("x", 4, 0, {ProgressMode::off, &off});
    bar.update(2);
  }
  EXPECT_TRUE(off.str().empty());
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(format_duration(0), "00:00");
  EXPECT_EQ(format_duration(75.4), "01:15");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(format_duration(NAN), "--:--");
}

TEST(Logger, FiltersByLevelAndTagsWarnings) {
  std::ostringstream sink;
  Logger log(LogLevel::warn, sink);
  log.info("hidden");
  log.warn("careful");
  log.error("broken");
  EXPECT_EQ(sink.str(), "warning: careful\nerror: broken\n");
  EXPECT_TRUE(testing::throws_error_containing([] { parse_log_level("loud"); }, "unknown log level 'loud'"));
}

TEST(Threads, SetsTheRequestedCountAndDefaultsToAllCores) {
  EXPECT_EQ(set_threads(1), 1);
  EXPECT_EQ(set_threads(0), hardware_cores());
  EXPECT_TRUE(testing::throws_error_containing([] { set_threads(-1); }, "--threads must be >= 0"));
}

}  // namespace
}  // namespace rewardgen
