#include "world/prompts.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "text/prompt_lines.h"

namespace rewardgen::world {

namespace {
const std::array<std::string, 6> kTaskNames = {"single_object", "two_object", "counting",
                                               "colors",        "position",   "color_attr"};
const std::array<std::string, 4> kRelationPhrases = {"to the left of", "to the right of", "above", "below"};
const std::array<std::string, 3> kCountWords = {"two", "three", "four"};  // counts 2, 3, 4
constexpr std::array<Relation, 4> kRelations = {Relation::left_of, Relation::right_of, Relation::above,
                                                Relation::below};
}  // namespace

const std::string& name(Task task) { return kTaskNames[static_cast<size_t>(task)]; }

Task task_named(const std::string& task_name) {
  for (Task task : kTasks)
    if (name(task) == task_name) return task;
  throw Error(str("unknown task '", task_name,
                  "' (tasks: single_object, two_object, counting, colors, position, color_attr)"));
}

const std::string& phrase(Relation relation) { return kRelationPhrases[static_cast<size_t>(relation)]; }

bool ObjectSpec::operator==(const ObjectSpec& other) const {
  return shape == other.shape && colour == other.colour && size == other.size;
}

std::string ObjectSpec::text() const {
  std::string out;
  if (size) out += name(*size) + " ";
  if (colour) out += name(*colour) + " ";
  return out + name(shape);
}

std::string Prompt::text() const {
  switch (task) {
    case Task::single_object: return "a " + objects[0].text();
    case Task::counting: {
      std::string out = kCountWords[static_cast<size_t>(count - 2)] + " ";
      if (objects[0].size) out += name(*objects[0].size) + " ";
      if (objects[0].colour) out += name(*objects[0].colour) + " ";
      return out + plural(objects[0].shape);
    }
    case Task::position: return "a " + objects[0].text() + " " + phrase(relation) + " a " + objects[1].text();
    case Task::two_object:
    case Task::colors:
    case Task::color_attr: return "a " + objects[0].text() + " and a " + objects[1].text();
  }
  return {};
}

// ---- parsing ---------------------------------------------------------------------------------

namespace {

class WordReader {
 public:
  explicit WordReader(const std::string& text) : text_(text) {
    std::istringstream stream(text);
    for (std::string word; stream >> word;) {
      std::transform(word.begin(), word.end(), word.begin(), [](unsigned char c) { return std::tolower(c); });
      words_.push_back(word);
    }
  }
  bool done() const { return at_ >= words_.size(); }
  const std::string& peek() const {
    static const std::string kEnd;
    return done() ? kEnd : words_[at_];
  }
  bool accept(const std::string& word) {
    if (peek() != word || done()) return false;
    ++at_;
    return true;
  }
  void expect(const std::string& word) {
    if (!accept(word)) fail(str("expected '", word, "'"));
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(str("prompt '", text_, "' is not in the world's grammar: ", what,
                    done() ? " at the end" : str(" at word ", at_ + 1, " '", words_[at_], "'"),
                    " (e.g. 'a red circle', 'three blue squares', 'a red circle to the left of a blue square')"));
  }
  std::string next() { return done() ? std::string() : words_[at_++]; }

 private:
  std::string text_;
  std::vector<std::string> words_;
  size_t at_ = 0;
};

// [size] [colour] shape — singular, or plural when `plural_form`.
ObjectSpec read_object(WordReader& reader, bool plural_form) {
  ObjectSpec spec{Shape::circle, std::nullopt, std::nullopt};
  if (auto size = size_named(reader.peek())) spec.size = size, reader.next();
  if (auto colour = colour_named(reader.peek())) spec.colour = colour, reader.next();
  const std::string word = reader.peek();
  const std::optional<Shape> shape = shape_named(word);
  if (!shape) reader.fail("expected a shape (circle, square, triangle)");
  if ((word == plural(*shape)) != plural_form) reader.fail(plural_form ? "expected a plural shape" : "expected one shape");
  reader.next();
  spec.shape = *shape;
  return spec;
}

std::optional<Relation> read_relation(WordReader& reader) {
  if (reader.accept("above")) return Relation::above;
  if (reader.accept("below")) return Relation::below;
  if (!reader.accept("to")) return std::nullopt;
  reader.expect("the");
  std::optional<Relation> relation;
  if (reader.accept("left")) relation = Relation::left_of;
  else if (reader.accept("right")) relation = Relation::right_of;
  else reader.fail("expected 'left' or 'right'");
  reader.expect("of");
  return relation;
}

// The grammar refuses two objects of the same shape and colour, whatever their sizes: a scene could
// not tell which is which.
bool same_object(const ObjectSpec& a, const ObjectSpec& b) { return a.shape == b.shape && a.colour == b.colour; }

}  // namespace

Prompt parse_prompt(const std::string& text) {
  WordReader reader(text);
  Prompt prompt{Task::single_object, {}, 1, Relation::left_of};
  const auto count_word = std::find(kCountWords.begin(), kCountWords.end(), reader.peek());
  if (count_word != kCountWords.end()) {
    reader.next();
    prompt.task = Task::counting;
    prompt.count = static_cast<int>(count_word - kCountWords.begin()) + 2;
    prompt.objects.push_back(read_object(reader, true));
  } else {
    reader.expect("a");
    prompt.objects.push_back(read_object(reader, false));
    if (!reader.done()) {
      const std::optional<Relation> relation = read_relation(reader);
      if (relation) {
        prompt.task = Task::position;
        prompt.relation = *relation;
      } else if (!reader.accept("and")) {
        reader.fail("expected 'and', 'above', 'below', 'to the left of' or 'to the right of'");
      }
      reader.expect("a");
      prompt.objects.push_back(read_object(reader, false));
      const ObjectSpec &first = prompt.objects[0], &second = prompt.objects[1];
      if (!relation) {
        prompt.task = first.size && second.size ? Task::color_attr
                      : first.shape == second.shape ? Task::colors
                                                    : Task::two_object;
      }
      if (same_object(first, second))
        throw Error(str("prompt '", text, "' names the same object twice; the two objects need another shape or colour"));
    }
  }
  if (!reader.done()) reader.fail("expected the end of the prompt");
  return prompt;
}

std::vector<std::string> grammar_words() {
  std::vector<std::string> words = {"a", "and", "to", "the", "left", "right", "of", "above", "below"};
  words.insert(words.end(), kCountWords.begin(), kCountWords.end());
  for (Shape shape : kShapes) words.push_back(name(shape)), words.push_back(plural(shape));
  for (Colour colour : kColours) words.push_back(name(colour));
  for (Size size : kSizes) words.push_back(name(size));
  return words;
}

// ---- enumeration, held-out set ---------------------------------------------------------------

std::vector<Prompt> all_prompts(Task task) {
  std::vector<Prompt> prompts;
  auto spec = [](Shape shape, Colour colour) { return ObjectSpec{shape, colour, std::nullopt}; };
  for (Shape s1 : kShapes) {
    for (Colour c1 : kColours) {
      switch (task) {
        case Task::single_object: prompts.push_back({task, {spec(s1, c1)}, 1, Relation::left_of}); break;
        case Task::counting:
          for (int count = 2; count <= 4; ++count) prompts.push_back({task, {spec(s1, c1)}, count, Relation::left_of});
          break;
        case Task::colors:
          for (Colour c2 : kColours)
            if (c2 != c1) prompts.push_back({task, {spec(s1, c1), spec(s1, c2)}, 1, Relation::left_of});
          break;
        case Task::two_object:
        case Task::position:
          for (Shape s2 : kShapes) {
            for (Colour c2 : kColours) {
              if (task == Task::two_object && s2 == s1) continue;
              if (s2 == s1 && c2 == c1) continue;
              if (task == Task::two_object) prompts.push_back({task, {spec(s1, c1), spec(s2, c2)}, 1, Relation::left_of});
              else
                for (Relation relation : kRelations) prompts.push_back({task, {spec(s1, c1), spec(s2, c2)}, 1, relation});
            }
          }
          break;
        case Task::color_attr:
          for (Size z1 : kSizes)
            for (Shape s2 : kShapes)
              for (Colour c2 : kColours)
                for (Size z2 : kSizes)
                  if (s2 != s1 || c2 != c1)
                    prompts.push_back({task, {{s1, c1, z1}, {s2, c2, z2}}, 1, Relation::left_of});
          break;
      }
    }
  }
  return prompts;
}

namespace {

// The held-out prompts of a task: a fixed quarter (at most kEvalLinesPerTask) of a seeded shuffle.
std::vector<Prompt> held_out(Task task) {
  std::vector<Prompt> prompts = all_prompts(task);
  Rng rng(0x5EED0000u + static_cast<uint64_t>(task));
  for (size_t i = prompts.size() - 1; i > 0; --i)
    std::swap(prompts[i], prompts[static_cast<size_t>(rng.below(static_cast<int64_t>(i) + 1))]);
  prompts.resize(std::min<size_t>(kEvalLinesPerTask, prompts.size() / 4));
  return prompts;
}

}  // namespace

std::vector<EvalPrompt> eval_prompts() {
  std::vector<EvalPrompt> lines;
  for (Task task : kTasks) {
    const std::vector<Prompt> held = held_out(task);
    for (int line = 0; line < kEvalLinesPerTask; ++line) lines.push_back({task, held[line % held.size()].text()});
  }
  return lines;
}

std::vector<EvalPrompt> balanced_subset(const std::vector<EvalPrompt>& prompts, int64_t limit) {
  if (limit <= 0 || limit >= static_cast<int64_t>(prompts.size())) return prompts;
  std::set<Task> tasks;
  for (const EvalPrompt& prompt : prompts) tasks.insert(prompt.task);
  const int64_t per_task = (limit + static_cast<int64_t>(tasks.size()) - 1) / static_cast<int64_t>(tasks.size());
  std::array<int64_t, kTasks.size()> taken{};
  std::vector<EvalPrompt> subset;
  for (const EvalPrompt& prompt : prompts)
    if (taken[static_cast<size_t>(prompt.task)]++ < per_task) subset.push_back(prompt);
  return subset;
}

std::string eval_prompts_jsonl(const std::vector<EvalPrompt>& prompts) {
  std::string out;
  for (const EvalPrompt& prompt : prompts)
    out += nlohmann::json{{"task", name(prompt.task)}, {"prompt", prompt.text}}.dump() + "\n";
  return out;
}

std::vector<EvalPrompt> read_prompts_file(const std::string& path) {
  std::vector<EvalPrompt> prompts;
  for (const text::PromptLine& prompt_line : text::read_prompt_lines(path)) {
    const std::string& line = prompt_line.text;
    const std::string where = str("'", path, "' line ", prompt_line.number);
    std::string text = line;
    std::optional<Task> stated;
    if (line[line.find_first_not_of(" \t")] == '{') {  // JSON lines {"prompt": ..., "task": ...}
      const nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
      if (row.is_discarded() || !row.is_object() || !row.contains("prompt") || !row["prompt"].is_string())
        throw Error(str(where, ": expected a JSON object with a string \"prompt\""));
      text = row["prompt"].get<std::string>();
      if (row.contains("task")) {
        if (!row["task"].is_string()) throw Error(str(where, ": \"task\" must be a string"));
        stated = task_named(row["task"].get<std::string>());
      }
    }
    Prompt parsed;
    try {
      parsed = parse_prompt(text);
    } catch (const Error& error) {
      throw Error(str(where, ": ", error.what()));
    }
    if (stated && *stated != parsed.task)
      throw Error(str(where, ": prompt '", text, "' is a ", name(parsed.task), " prompt, not ", name(*stated)));
    prompts.push_back({parsed.task, text});
  }
  if (prompts.empty()) throw Error(str("prompts file '", path, "' has no prompts"));
  return prompts;
}

TrainingPrompts::TrainingPrompts(const TaskWeights& task_weights) : task_weights_(task_weights) {
  for (Task task : kTasks) {
    const double weight = task_weights[static_cast<size_t>(task)];
    if (!std::isfinite(weight) || weight < 0) throw Error(str("task weight of ", name(task), " is ", weight, ": want a finite number >= 0"));
    total_weight_ += weight;
    if (weight > 0) last_drawable_ = static_cast<size_t>(task);
    uniform_ = uniform_ && weight == task_weights[0];
  }
  if (!(total_weight_ > 0)) throw Error("task weights are all 0: some task must be drawn");
  for (Task task : kTasks) {
    std::set<std::string> held;
    for (const Prompt& prompt : held_out(task)) held.insert(prompt.text());
    for (Prompt& prompt : all_prompts(task))
      if (held.count(prompt.text()) == 0) by_task_[static_cast<size_t>(task)].push_back(std::move(prompt));
  }
}

const Prompt& TrainingPrompts::sample(Rng& rng) const {
  size_t task = 0;
  if (uniform_) {
    task = static_cast<size_t>(rng.below(kTasks.size()));
  } else {
    double draw = rng.uniform(0, total_weight_);
    while (task < last_drawable_ && (task_weights_[task] == 0 || draw >= task_weights_[task])) draw -= task_weights_[task++];
  }
  const std::vector<Prompt>& prompts = by_task_[task];
  return prompts[static_cast<size_t>(rng.below(static_cast<int64_t>(prompts.size())))];
}

// ---- scenes for prompts ----------------------------------------------------------------------

namespace {

constexpr float kGap = 4.0f;             // free pixels between bounding boxes (blur must not merge them)
constexpr float kRelationOffset = 16.0f;  // position scenes: centres this far apart on the axis

float half_extent_for(Size size, Rng& rng) {
  const float base = size == Size::small ? kSmallHalfExtent : kLargeHalfExtent;
  return base + static_cast<float>(rng.uniform(-0.5, 0.5));
}

bool separated(const Object& a, const Object& b) {
  const float need = a.half_extent + b.half_extent + kGap;
  return std::abs(a.cx - b.cx) >= need || std::abs(a.cy - b.cy) >= need;
}

bool relation_holds(const Object& a, const Object& b, Relation relation) {
  float along = 0, across = 0;
  switch (relation) {
    case Relation::left_of: along = b.cx - a.cx, across = b.cy - a.cy; break;
    case Relation::right_of: along = a.cx - b.cx, across = b.cy - a.cy; break;
    case Relation::above: along = b.cy - a.cy, across = b.cx - a.cx; break;
    case Relation::below: along = a.cy - b.cy, across = b.cx - a.cx; break;
  }
  return along >= kRelationOffset && std::abs(across) <= along / 2;
}

// Places the objects (shape/colour/size/half extent set) at random non-overlapping positions.
bool place(std::vector<Object>& objects, const Prompt& prompt, Rng& rng) {
  for (size_t i = 0; i < objects.size(); ++i) {
    bool placed = false;
    for (int attempt = 0; attempt < 200 && !placed; ++attempt) {
      Object& object = objects[i];
      const float lo = object.half_extent + 1, hi = kImageSize - object.half_extent - 1;
      object.cx = static_cast<float>(rng.uniform(lo, hi));
      object.cy = static_cast<float>(rng.uniform(lo, hi));
      placed = std::all_of(objects.begin(), objects.begin() + i, [&](const Object& o) { return separated(o, object); });
      if (placed && prompt.task == Task::position && i == 1) placed = relation_holds(objects[0], object, prompt.relation);
    }
    if (!placed) return false;
  }
  return true;
}

}  // namespace

Scene scene_for_prompt(const Prompt& prompt, Rng& rng) {
  Scene scene;
  scene.background = random_background(rng);
  const int copies = prompt.task == Task::counting ? prompt.count : 1;
  std::vector<Object> objects;
  std::vector<bool> size_free;
  for (const ObjectSpec& spec : prompt.objects) {
    for (int copy = 0; copy < copies; ++copy) {
      Object object{spec.shape, Colour::red, Size::small, 0, 0, 0};
      object.colour = spec.colour ? *spec.colour : kColours[static_cast<size_t>(rng.below(kColours.size()))];
      object.size = spec.size ? *spec.size : kSizes[static_cast<size_t>(rng.below(kSizes.size()))];
      object.half_extent = half_extent_for(object.size, rng);
      objects.push_back(object);
      size_free.push_back(!spec.size);
    }
  }
  for (int round = 0; round < 50; ++round) {
    if (place(objects, prompt, rng)) {
      scene.objects = objects;
      return scene;
    }
    // Crowded (e.g. four large objects): make one free-sized large object small and try again.
    for (size_t i = 0; i < objects.size(); ++i) {
      if (size_free[i] && objects[i].size == Size::large) {
        objects[i].size = Size::small;
        objects[i].half_extent = half_extent_for(Size::small, rng);
        break;
      }
    }
  }
  throw Error(str("cannot place the objects of '", prompt.text(), "' on a ", kImageSize, "x", kImageSize, " canvas"));
}

Relation opposite(Relation relation) {
  static constexpr Relation kOpposite[] = {Relation::right_of, Relation::left_of, Relation::below, Relation::above};
  return kOpposite[static_cast<size_t>(relation)];
}

namespace {

Colour other_colour(Colour colour, Rng& rng, std::optional<Colour> also_not = std::nullopt) {
  while (true) {
    const Colour candidate = kColours[static_cast<size_t>(rng.below(kColours.size()))];
    if (candidate != colour && candidate != also_not) return candidate;
  }
}
}  // namespace

Prompt hard_negative(const Prompt& prompt, Rng& rng) {
  Prompt negative = prompt;
  std::vector<ObjectSpec>& objects = negative.objects;
  switch (prompt.task) {
    case Task::single_object:
      if (objects[0].colour && rng.below(2) == 0) objects[0].colour = other_colour(*objects[0].colour, rng);
      else objects[0].shape = kShapes[(static_cast<size_t>(objects[0].shape) + 1 + rng.below(2)) % kShapes.size()];
      break;
    case Task::counting:
      negative.count = prompt.count == 2 ? 3 : prompt.count == 4 ? 3 : (rng.below(2) == 0 ? 2 : 4);
      break;
    case Task::position: negative.relation = opposite(prompt.relation); break;
    case Task::color_attr:
      if (objects[0].size != objects[1].size) {
        std::swap(objects[0].size, objects[1].size);
        break;
      }
      [[fallthrough]];
    case Task::two_object:
    case Task::colors:
      // Swapping colours only makes a false prompt when the shapes differ and the colours do too.
      if (objects[0].shape != objects[1].shape && objects[0].colour && objects[1].colour &&
          objects[0].colour != objects[1].colour) {
        std::swap(objects[0].colour, objects[1].colour);
      } else {
        const size_t which = static_cast<size_t>(rng.below(2));
        const std::optional<Colour> other = objects[1 - which].colour;
        objects[which].colour = other_colour(objects[which].colour.value_or(Colour::red), rng, other);
      }
      break;
  }
  return negative;
}

namespace {
// A scene holding exactly `prompt`'s objects satisfies the object clauses of `candidate` when each
// of its objects is one of them (free attributes match anything).
bool objects_all_present(const Prompt& candidate, const Prompt& prompt) {
  auto covers = [](const ObjectSpec& have, const ObjectSpec& want) {
    return have.shape == want.shape && (!want.colour || have.colour == want.colour) && (!want.size || have.size == want.size);
  };
  return std::all_of(candidate.objects.begin(), candidate.objects.end(), [&](const ObjectSpec& want) {
    return std::any_of(prompt.objects.begin(), prompt.objects.end(), [&](const ObjectSpec& have) { return covers(have, want); });
  });
}
}  // namespace

std::vector<Prompt> one_edit_negatives(const Prompt& prompt) {
  std::vector<Prompt> edits;
  for (size_t i = 0; i < prompt.objects.size(); ++i) {
    const ObjectSpec& object = prompt.objects[i];
    auto edited = [&](const ObjectSpec& replacement) {
      Prompt edit = prompt;
      edit.objects[i] = replacement;
      edits.push_back(edit);
    };
    if (object.colour)
      for (Colour colour : kColours)
        if (colour != *object.colour) edited({object.shape, colour, object.size});
    for (Shape shape : kShapes)
      if (shape != object.shape) edited({shape, object.colour, object.size});
    if (object.size) edited({object.shape, object.colour, *object.size == Size::small ? Size::large : Size::small});
  }
  if (prompt.objects.size() == 2) {
    Prompt colours_swapped = prompt, sizes_swapped = prompt;
    std::swap(colours_swapped.objects[0].colour, colours_swapped.objects[1].colour);
    std::swap(sizes_swapped.objects[0].size, sizes_swapped.objects[1].size);
    edits.push_back(colours_swapped);
    edits.push_back(sizes_swapped);
  }
  // An object edit is a negative when one of its objects is absent from `prompt`'s scenes and the
  // grammar accepts it; the count and relation edits below are false of every such scene.
  auto refused_by_grammar = [](const Prompt& p) { return p.objects.size() == 2 && same_object(p.objects[0], p.objects[1]); };
  std::vector<Prompt> negatives;
  std::set<std::string> seen = {prompt.text()};
  for (const Prompt& edit : edits)
    if (!objects_all_present(edit, prompt) && !refused_by_grammar(edit) && seen.insert(edit.text()).second)
      negatives.push_back(edit);
  if (prompt.task == Task::counting)
    for (int count = 2; count <= 4; ++count)
      if (count != prompt.count) {
        Prompt edit = prompt;
        edit.count = count;
        negatives.push_back(edit);
      }
  if (prompt.task == Task::position) {
    Prompt edit = prompt;
    edit.relation = opposite(prompt.relation);
    negatives.push_back(edit);
  }
  return negatives;
}

ScenePrompt sample_training_pair(const TrainingPrompts& prompts, Rng& rng) {
  const Prompt& prompt = prompts.sample(rng);
  return {scene_for_prompt(prompt, rng), prompt};
}

}  // namespace rewardgen::world
