#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "test_util.h"

namespace rewardgen {
namespace {

using testing::TempDir;
using testing::throws_error_containing;

// One tensor of every supported dtype, with values that exercise the dtype's range.
TensorMap every_dtype() {
  at::manual_seed(7);
  TensorMap t;
  t["f64"] = at::randn({3, 2}, at::kDouble);
  t["f32"] = at::randn({2, 3, 4});
  t["f16"] = at::randn({5}).to(at::kHalf);
  t["bf16"] = at::randn({2, 2}).to(at::kBFloat16);
  t["i64"] = at::tensor({INT64_MIN, int64_t{-1}, int64_t{0}, INT64_MAX});
  t["i32"] = at::tensor({INT32_MIN, -3, INT32_MAX});
  t["i16"] = at::tensor({-32768, 5, 32767}).to(at::kShort);
  t["i8"] = at::tensor({-128, 0, 127}).to(at::kChar);
  t["u8"] = at::tensor({0, 128, 255}).to(at::kByte);
  t["bool"] = at::tensor({1, 0, 1}).to(at::kBool);
  t["scalar"] = at::scalar_tensor(3.5);           // shape []
  t["empty"] = at::zeros({0, 7});                 // zero bytes
  t["strided"] = at::arange(12.0).view({3, 4}).t();  // non-contiguous: written in C order
  return t;
}

void expect_same(const TensorMap& expected, const TensorMap& actual) {
  ASSERT_EQ(expected.size(), actual.size());
  for (const auto& [name, t] : expected) {
    ASSERT_TRUE(actual.count(name)) << name;
    const at::Tensor& a = actual.at(name);
    EXPECT_EQ(a.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(a.sizes(), t.sizes()) << name;
    EXPECT_TRUE(at::equal(a, t.contiguous())) << name;  // bit-exact
  }
}

TEST(Safetensors, RoundTripsEveryDtypeThroughAFile) {
  TempDir dir;
  const TensorMap tensors = every_dtype();
  const Metadata metadata{{"format", "pt"}, {"note", "ünïcode ✓"}};
  save_safetensors(dir.file("all.safetensors"), tensors, metadata);
  const SafetensorsFile file = SafetensorsFile::open(dir.file("all.safetensors"));
  expect_same(tensors, file.load_all());
  EXPECT_EQ(file.metadata(), metadata);
  // Nothing but the file itself is left in the folder: the temporary was renamed.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(Safetensors, RoundTripsInMemoryAndAlignsData) {
  const TensorMap tensors = every_dtype();
  const std::string bytes = serialize_safetensors(tensors);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u) << "the data section must start 8-byte aligned";
  const SafetensorsFile file = SafetensorsFile::from_bytes(bytes, "memory");
  for (const TensorInfo& info : file.tensors())
    EXPECT_EQ(info.begin % c10::elementSize(info.dtype), 0u) << info.name << " starts unaligned";
  expect_same(tensors, file.load_all());
  EXPECT_TRUE(file.metadata().empty());
}

TEST(Safetensors, ReadsAFileWrittenByAnIndependentWriter) {
  // tests/data/reference_tiny.safetensors: see tools/make_safetensors_fixtures.py for the values.
  const SafetensorsFile file = SafetensorsFile::open(std::string(REWARDGEN_TEST_DATA) + "/reference_tiny.safetensors");
  ASSERT_EQ(file.tensors().size(), 4u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_TRUE(at::equal(file.tensor("weight"), at::tensor({0.f, 0.5f, 1.f, 1.5f, 2.f, 2.5f}).view({2, 3})));
  const at::Tensor bias = file.tensor("bias");
  EXPECT_EQ(bias.scalar_type(), at::kHalf);
  EXPECT_TRUE(at::equal(bias.to(at::kFloat), at::tensor({-1.f, 0.25f, 65504.f})));
  EXPECT_TRUE(at::equal(file.tensor("ids"), at::tensor({int64_t{-7}, int64_t{1} << 40})));
  EXPECT_TRUE(at::equal(file.tensor("mask"), at::tensor({1, 0, 0, 1}).to(at::kBool)));
  EXPECT_TRUE(throws_error_containing([&] { file.tensor("nope"); }, "no tensor named 'nope'"));
}

TEST(Safetensors, MappedTensorsAreZeroCopyAndWritesDoNotReachTheFile) {
  TempDir dir;
  save_safetensors(dir.file("x.safetensors"), {{"x", at::arange(16.0f)}});
  {
    const SafetensorsFile file = SafetensorsFile::open(dir.file("x.safetensors"));
    at::Tensor a = file.tensor("x"), b = file.tensor("x");
    EXPECT_EQ(a.data_ptr(), b.data_ptr()) << "two reads of an aligned tensor view the same mapping";
    a.mul_(-1);  // copy-on-write mapping: allowed, private
    EXPECT_EQ(b[3].item<float>(), -3.f);
  }
  at::Tensor kept;
  {
    kept = SafetensorsFile::open(dir.file("x.safetensors")).tensor("x");  // file object gone...
  }
  EXPECT_EQ(kept[5].item<float>(), 5.f);  // ...the tensor keeps the mapping alive; file unchanged
}

// A file image from a header (as JSON text) and a data section, for hand-made cases.
std::string image(const std::string& header, const std::string& data) {
  const uint64_t n = header.size();
  return std::string(reinterpret_cast<const char*>(&n), 8) + header + data;
}

std::string floats(std::initializer_list<float> values) {
  return std::string(reinterpret_cast<const char*>(values.begin()), values.size() * sizeof(float));
}

TEST(Safetensors, CopiesUnalignedTensors) {
  // Header of odd length: the F32 data starts at file offset 8 + 55, not a multiple of 4.
  std::string header = R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})";
  header.append(55 - header.size(), ' ');
  const SafetensorsFile file = SafetensorsFile::from_bytes(image(header, floats({1.f, -2.f, 3.5f})), "odd");
  EXPECT_TRUE(at::equal(file.tensor("x"), at::tensor({1.f, -2.f, 3.5f})));
}

struct InvalidCase {
  const char* what;
  std::string bytes;
  const char* message;
};

std::vector<InvalidCase> invalid_cases() {
  const std::string ok_data = floats({1, 2});
  auto one = [&](const std::string& entry) { return image(R"({"t":)" + entry + "}", ok_data); };
  std::string huge_length(8, '\0');
  const uint64_t huge = 100'000'001;
  std::memcpy(huge_length.data(), &huge, 8);
  return {
      {"empty file", "", "shorter than the 8-byte header length"},
      {"7 bytes", std::string(7, '\0'), "shorter than the 8-byte header length"},
      {"header over 100 MB", huge_length + "{}", "exceeds the limit of 100000000 bytes"},
      {"header past end", image("{}", "").substr(0, 8) + "{", "runs past the end"},
      {"not JSON", image("{nope}", ""), "header is not valid JSON"},
      {"not an object", image("[1, 2]", ""), "must be a JSON object"},
      {"trailing garbage", image("{} x", ""), "header is not valid JSON"},
      {"duplicate key", image(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", ok_data), "repeats the key 't'"},
      {"missing dtype", one(R"({"shape":[2],"data_offsets":[0,8]})"), "tensor 't': missing field 'dtype'"},
      {"missing shape", one(R"({"dtype":"F32","data_offsets":[0,8]})"), "missing field 'shape'"},
      {"missing offsets", one(R"({"dtype":"F32","shape":[2]})"), "missing field 'data_offsets'"},
      {"unknown dtype", one(R"({"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]})"), "unsupported dtype 'F8_E4M3'"},
      {"dtype not a string", one(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})"), "'dtype' must be a string"},
      {"negative dim", one(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), "non-negative integers"},
      {"fractional dim", one(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})"), "non-negative integers"},
      {"shape overflow", one(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]})"), "overflows"},
      {"offsets length", one(R"({"dtype":"F32","shape":[2],"data_offsets":[0]})"), "must be [begin, end]"},
      {"offsets reversed", one(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})"), "end before they begin"},
      {"size mismatch", one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"), "need 12 bytes but data_offsets [0, 8] span 8"},
      {"past the end", image(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", ok_data), "run past the end of the 8-byte data section"},
      {"overlap", image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", ok_data), "overlap tensor 'a'"},
      {"gap", image(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", ok_data), "leave a gap of 4 unindexed bytes"},
      {"trailing bytes", image(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", ok_data), "4 trailing bytes"},
      {"metadata not strings", image(R"({"__metadata__":{"k":1}})", ""), "'__metadata__' value of 'k' must be a string"},
      {"unexpected field", one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1})"), "unexpected field 'extra'"},
      {"empty name", image(R"({"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", ok_data), "empty name"},
      {"entry not an object", one("[1]"), "entry must be an object"},
  };
}

TEST(Safetensors, RejectsEveryInvalidCaseWithAMessageNamingTheFile) {
  for (const InvalidCase& c : invalid_cases()) {
    EXPECT_TRUE(throws_error_containing([&] { SafetensorsFile::from_bytes(c.bytes, "case.safetensors"); }, c.message))
        << c.what;
    EXPECT_TRUE(throws_error_containing([&] { SafetensorsFile::from_bytes(c.bytes, "case.safetensors"); },
                                        "case.safetensors: invalid safetensors file"))
        << c.what;
  }
}

TEST(Safetensors, RejectsBoolBytesOtherThanZeroOrOne) {
  const std::string bytes = image(R"({"b":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", std::string("\x01\x02", 2));
  const SafetensorsFile file = SafetensorsFile::from_bytes(bytes, "bool.safetensors");
  EXPECT_TRUE(throws_error_containing([&] { file.tensor("b"); }, "tensor 'b': BOOL byte 1 holds 2"));
}

TEST(Safetensors, WriterRejectsWhatTheFormatCannotHold) {
  TempDir dir;
  EXPECT_TRUE(throws_error_containing(
      [&] { save_safetensors(dir.file("c.safetensors"), {{"z", at::zeros({2}, at::kComplexFloat)}}); },
      "cannot be stored in safetensors"));
  EXPECT_TRUE(throws_error_containing([&] { serialize_safetensors({{"__metadata__", at::zeros({1})}}); }, "reserved"));
  EXPECT_FALSE(std::filesystem::exists(dir.file("c.safetensors")));
}

TEST(Safetensors, AHeaderOfManySmallTensorsParsesInLinearTime) {
  // 64k one-byte tensors (a 5 MB header): 2 s here is generous for a linear parse; the quadratic
  // one took 17 s for 32k. A repeated key among them is still found.
  constexpr int kTensors = 1 << 16;
  std::string header = "{", data(kTensors, '\x01');
  for (int i = 0; i < kTensors; ++i)
    header += str(i ? "," : "", "\"t", i, "\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[", i, ",", i + 1, "]}");
  const auto start = std::chrono::steady_clock::now();
  const SafetensorsFile file = SafetensorsFile::from_bytes(image(header + "}", data), "many.safetensors");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
  EXPECT_EQ(file.tensors().size(), static_cast<size_t>(kTensors));
  const std::string repeated = header + ",\"t7\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
  EXPECT_TRUE(throws_error_containing([&] { SafetensorsFile::from_bytes(image(repeated, data), "many.safetensors"); },
                                      "header repeats the key 't7'"));
}

TEST(Safetensors, OpenRefusesAFifoWithoutBlocking) {
  TempDir dir;
  ASSERT_EQ(mkfifo(dir.file("w.fifo").c_str(), 0600), 0);
  EXPECT_TRUE(throws_error_containing([&] { SafetensorsFile::open(dir.file("w.fifo")); }, "not a regular file"));
  EXPECT_TRUE(throws_error_containing([&] { read_text_file(dir.file("w.fifo")); }, "it is a FIFO"));
}

TEST(Safetensors, OpenNamesAMissingFile) {
  EXPECT_TRUE(throws_error_containing([] { SafetensorsFile::open("/nonexistent/w.safetensors"); },
                                      "cannot open '/nonexistent/w.safetensors'"));
}

TEST(AtomicFile, AnUncommittedWriterLeavesThePreviousFileIntact) {
  TempDir dir;
  write_file_atomic(dir.file("a.txt"), "old");
  {
    AtomicFileWriter writer(dir.file("a.txt"));
    writer.write("new contents that never land");
  }  // destroyed without commit, as when an exception interrupts a save
  EXPECT_EQ(read_text_file(dir.file("a.txt")), "old");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1) << "temporary file left behind";
}

}  // namespace
}  // namespace rewardgen
