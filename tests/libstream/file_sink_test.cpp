// What sinks and sources put into checkpoints and get back: the
// exactly-once file sink (staged part files committed on completion,
// cleanup after a restore) and the positions of generator sources. No actor
// system involved.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint_fixture.hpp"
#include "stream/checkpoint/snapshot.hpp"
#include "stream/detail/sinks.hpp"
#include "stream/detail/sources.hpp"
#include "stream/detail/text_io.hpp"
#include "stream/metrics.hpp"

namespace stream {
namespace {

namespace fs = std::filesystem;
using checkpoint::pending_snapshot;
using checkpoint::restored_state;
using testing::temp_dir;

// -- the exactly-once file sink ---------------------------------------------

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream{path} << text;
}

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.insert(e.path().filename().string());
  return out;
}

struct sink_fixture {
  using sink = detail::file_commit_sink<std::string>;

  explicit sink_fixture(std::chrono::milliseconds interval) {
    options.checkpoint_interval = interval;
    metric_labels labels{{"job", "ckpt"}, {"operator", "file_sink"}};
    ctx.job_name = "ckpt";
    ctx.operator_name = "file_sink";
    ctx.subtask = 0;
    ctx.records_in =
        &registry.get_counter("stream_records_in_total", "Records in.", labels);
    ctx.records_out = &registry.get_counter("stream_records_out_total",
                                            "Records out.", labels);
    ctx.metrics = &registry;
    ctx.options = &options;
  }

  std::unique_ptr<sink> make() {
    auto s = std::make_unique<sink>(ctx, out);
    auto st = s->open();
    EXPECT_TRUE(st.ok()) << st.to_string();
    return s;
  }

  static void push(sink& s, std::vector<std::string> lines) { s.push(lines); }

  /// The sink's operator state at checkpoint `id`.
  static std::string snapshot(sink& s, std::int64_t id) {
    pending_snapshot part;
    part.data = std::make_unique<checkpoint::snapshot_builder>();
    s.snapshot_state(id, part);
    EXPECT_FALSE(part.deferred);
    return part.data->operator_state;
  }

  static restored_state restored(std::int64_t id, std::string state) {
    restored_state in;
    in.checkpoint_id = id;
    in.operator_state = std::move(state);
    in.has_operator_state = true;
    return in;
  }

  std::string path(const std::string& name) const { return out + "/" + name; }

  temp_dir dir;
  std::string out = dir.path() + "/out";
  job_options options;
  metrics_registry registry;
  runtime::stage_context ctx;
};

using names = std::set<std::string>;

TEST(file_commit_sink, output_becomes_visible_when_its_checkpoint_completes) {
  sink_fixture f{std::chrono::milliseconds{100}};
  auto s = f.make();
  f.push(*s, {"a", "b"});
  EXPECT_EQ(files_in(f.out), names{".part-0-0.inprogress"});
  f.snapshot(*s, 1);
  EXPECT_EQ(files_in(f.out), names{".part-0-1.pending"});
  EXPECT_EQ(read_file(f.path(".part-0-1.pending")), "a\nb\n");
  f.push(*s, {"c"});
  EXPECT_FALSE(fs::exists(f.path("part-0-1")));

  s->notify_checkpoint_complete(1);
  EXPECT_EQ(read_file(f.path("part-0-1")), "a\nb\n");
  EXPECT_EQ(files_in(f.out), (names{"part-0-1", ".part-0-1.inprogress"}));
  s->notify_checkpoint_complete(1);  // again: harmless
  EXPECT_EQ(files_in(f.out), (names{"part-0-1", ".part-0-1.inprogress"}));

  // A checkpoint without new records stages nothing; one completion
  // commits every checkpoint up to it.
  f.snapshot(*s, 2);
  f.snapshot(*s, 3);
  f.push(*s, {"d"});
  f.snapshot(*s, 4);
  EXPECT_EQ(files_in(f.out),
            (names{"part-0-1", ".part-0-2.pending", ".part-0-4.pending"}));
  s->notify_checkpoint_complete(4);
  EXPECT_EQ(files_in(f.out), (names{"part-0-1", "part-0-2", "part-0-4"}));
  EXPECT_EQ(read_file(f.path("part-0-2")), "c\n");
  EXPECT_EQ(read_file(f.path("part-0-4")), "d\n");
  EXPECT_EQ(f.ctx.records_in->raw(), 4U);
}

/// A run that completed checkpoint 1, staged checkpoint 2 (whose completion
/// never arrived) and wrote on; a later attempt left its own files, and
/// subtask 1 has files in the same directory. Returns the state at 2.
std::string leave_a_failed_run(sink_fixture& f) {
  auto s = f.make();
  f.push(*s, {"a"});
  f.snapshot(*s, 1);
  s->notify_checkpoint_complete(1);
  f.push(*s, {"b"});
  auto state = f.snapshot(*s, 2);
  f.push(*s, {"c"});
  s->flush();
  s.reset();
  write_file(f.path("part-0-3"), "later\n");
  write_file(f.path(".part-0-3.inprogress"), "later\n");
  write_file(f.path("part-1-3"), "other\n");
  write_file(f.path(".part-1-2.pending"), "other\n");
  EXPECT_EQ(files_in(f.out),
            (names{"part-0-1", ".part-0-2.pending", ".part-0-2.inprogress",
                   "part-0-3", ".part-0-3.inprogress", "part-1-3",
                   ".part-1-2.pending"}));
  return state;
}

TEST(file_commit_sink, a_restored_sink_commits_the_restored_checkpoint) {
  sink_fixture f{std::chrono::milliseconds{100}};
  auto state = leave_a_failed_run(f);
  auto s = f.make();
  auto st = s->restore_state(f.restored(2, state));
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(read_file(f.path("part-0-2")), "b\n");

  // The first output removes what the failed run wrote after checkpoint 2.
  f.push(*s, {"d"});
  EXPECT_EQ(files_in(f.out),
            (names{"part-0-1", "part-0-2", ".part-0-2.inprogress", "part-1-3",
                   ".part-1-2.pending"}));
  f.snapshot(*s, 3);
  s->notify_checkpoint_complete(3);
  EXPECT_EQ(read_file(f.path("part-0-3")), "d\n");
  EXPECT_EQ(read_file(f.path("part-0-1")), "a\n");
}

TEST(file_commit_sink, a_restored_sink_cleans_up_on_finish_too) {
  sink_fixture f{std::chrono::milliseconds{100}};
  auto state = leave_a_failed_run(f);
  auto s = f.make();
  ASSERT_TRUE(s->restore_state(f.restored(2, state)).ok());
  s->finish();
  EXPECT_EQ(files_in(f.out),
            (names{"part-0-1", "part-0-2", "part-1-3", ".part-1-2.pending"}));
}

TEST(file_commit_sink, restoring_a_commit_that_already_happened_is_harmless) {
  sink_fixture f{std::chrono::milliseconds{100}};
  std::string state;
  {
    auto s = f.make();
    f.push(*s, {"a"});
    state = f.snapshot(*s, 1);
    s->notify_checkpoint_complete(1);
  }
  auto s = f.make();
  auto st = s->restore_state(f.restored(1, state));
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(read_file(f.path("part-0-1")), "a\n");
}

TEST(file_commit_sink, restore_fails_when_staged_output_is_gone) {
  sink_fixture f{std::chrono::milliseconds{100}};
  std::string state;
  {
    auto s = f.make();
    f.push(*s, {"a"});
    state = f.snapshot(*s, 2);
  }
  fs::remove(f.path(".part-0-2.pending"));
  auto s = f.make();
  auto st = s->restore_state(f.restored(2, state));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), errc::not_found);
  EXPECT_NE(st.message().find(f.path(".part-0-2.pending")), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find(f.path("part-0-2")), std::string::npos)
      << st.message();
}

TEST(file_commit_sink, without_checkpoints_finish_commits_the_output) {
  sink_fixture f{std::chrono::milliseconds{0}};
  auto s = f.make();
  f.push(*s, {"a", "b"});
  f.push(*s, {"c"});
  EXPECT_TRUE(files_in(f.out).count("part-0-1") == 0);
  s->finish();
  EXPECT_EQ(files_in(f.out), names{"part-0-1"});
  EXPECT_EQ(read_file(f.path("part-0-1")), "a\nb\nc\n");
}

TEST(part_files, clean_keeps_committed_output_and_other_subtasks_files) {
  temp_dir dir;
  detail::part_files files{dir.path(), 0};
  ASSERT_TRUE(files.open().ok());
  for (const auto* name :
       {"part-0-1", "part-0-2", "part-0-3", "part-0-12", ".part-0-3.inprogress",
        ".part-0-4.pending", "part-1-5", ".part-1-5.pending",
        ".part-1-6.inprogress", "part-10-9", ".part-10-9.pending", "part-0-x",
        "notes.txt"})
    write_file(dir.path() + "/" + name, "x\n");
  auto removed = files.clean(2);
  ASSERT_TRUE(removed.ok()) << removed.error().to_string();
  EXPECT_EQ(*removed, 4U);
  EXPECT_EQ(files_in(dir.path()),
            (names{"part-0-1", "part-0-2", "part-1-5", ".part-1-5.pending",
                   ".part-1-6.inprogress", "part-10-9", ".part-10-9.pending",
                   "part-0-x", "notes.txt"}));
}

TEST(part_files, in_progress_files_are_per_attempt_and_all_are_cleaned) {
  // A task of an older attempt that still runs on a cut-off worker must
  // never write into its replacement's file.
  temp_dir dir;
  detail::part_files first{dir.path(), 0};
  detail::part_files third{dir.path(), 0, 2};
  EXPECT_EQ(first.in_progress(3), dir.path() + "/.part-0-3.inprogress");
  EXPECT_EQ(third.in_progress(3), dir.path() + "/.part-0-3-a2.inprogress");
  EXPECT_EQ(third.pending(3), first.pending(3));
  ASSERT_TRUE(third.open().ok());
  for (const auto* name : {".part-0-3.inprogress", ".part-0-3-a1.inprogress",
                           ".part-0-3-a2.inprogress", ".part-1-3-a1.inprogress",
                           ".part-0-x.inprogress", "part-0-2"})
    write_file(dir.path() + "/" + name, "x\n");
  auto removed = third.clean(2);
  ASSERT_TRUE(removed.ok()) << removed.error().to_string();
  EXPECT_EQ(*removed, 3U);
  EXPECT_EQ(files_in(dir.path()), (names{".part-1-3-a1.inprogress",
                                         ".part-0-x.inprogress", "part-0-2"}));
}

// -- source positions ---------------------------------------------------------

/// Gathers everything pushed into it.
class gather final : public runtime::consumer<std::uint64_t> {
 public:
  void push(std::vector<std::uint64_t>& records) override {
    all.insert(all.end(), records.begin(), records.end());
  }
  void flush() override {}
  void finish() override {}
  void on_control(const runtime::control_event&) override {}

  std::vector<std::uint64_t> all;
};

struct generator_fixture {
  generator_fixture(std::uint32_t subtask, std::uint32_t parallelism) {
    ctx.subtask = subtask;
    ctx.parallelism = parallelism;
    ctx.records_in = &in;
    ctx.records_out = &out;
  }
  auto make(std::uint64_t count) {
    auto fn = [](std::uint64_t i) { return i * 3 + 1; };
    return detail::generator_source<std::uint64_t, decltype(fn)>{ctx, &sink, fn,
                                                                 count, 0};
  }
  counter in;
  counter out;
  runtime::stage_context ctx;
  gather sink;
};

template <class Source>
std::string position_of(Source& s) {
  pending_snapshot part;
  part.data = std::make_unique<checkpoint::snapshot_builder>();
  s.snapshot_state(1, part);
  return part.data->operator_state;
}

restored_state position_state(std::string state) {
  restored_state in;
  in.checkpoint_id = 1;
  in.operator_state = std::move(state);
  in.has_operator_state = true;
  return in;
}

TEST(generator_source, a_restored_source_resumes_at_the_same_index) {
  generator_fixture a{1, 3};
  auto g = a.make(500);
  ASSERT_TRUE(g.open().ok());
  g.pull(7);
  g.pull(7);
  auto state = position_of(g);
  auto before = a.sink.all.size();
  while (g.pull(10).next != runtime::pull_result::state::ended) {
  }
  std::vector<std::uint64_t> rest(a.sink.all.begin() + before,
                                  a.sink.all.end());
  ASSERT_FALSE(rest.empty());

  generator_fixture b{1, 3};
  auto h = b.make(500);
  ASSERT_TRUE(h.open().ok());
  auto st = h.restore_state(position_state(state));
  ASSERT_TRUE(st.ok()) << st.to_string();
  while (h.pull(10).next != runtime::pull_result::state::ended) {
  }
  EXPECT_EQ(b.sink.all, rest);
}

TEST(generator_source, a_position_of_another_parallelism_is_refused) {
  generator_fixture a{1, 3};
  auto g = a.make(500);
  ASSERT_TRUE(g.open().ok());
  g.pull(5);
  auto state = position_of(g);

  generator_fixture narrower{1, 2};
  auto h = narrower.make(500);
  auto st = h.restore_state(position_state(state));
  EXPECT_EQ(st.code(), errc::malformed_data) << st.to_string();

  generator_fixture other_subtask{0, 3};
  auto k = other_subtask.make(500);
  st = k.restore_state(position_state(state));
  EXPECT_EQ(st.code(), errc::malformed_data) << st.to_string();

  generator_fixture same{1, 3};
  auto m = same.make(500);
  st = m.restore_state(restored_state{});  // no position at all
  EXPECT_EQ(st.code(), errc::malformed_data) << st.to_string();
}

// -- start-up checks of output folders ---------------------------------------

TEST(output_checks, a_folder_is_created_and_probed) {
  temp_dir dir;
  auto nested = dir.path() + "/a/b/out";
  EXPECT_TRUE(detail::check_writable_directory(nested, "output folder").ok());
  EXPECT_TRUE(fs::is_directory(nested));
  EXPECT_TRUE(fs::is_empty(nested)) << "the probe file is removed";
  // Root may write anywhere: use what nobody can write into.
  write_file(dir.path() + "/plain", "x");
  for (const std::string& bad :
       {dir.path() + "/plain", dir.path() + "/plain/sub",
        std::string{"/proc/x"}}) {
    auto st = detail::check_writable_directory(bad, "--checkpoint-dir");
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_EQ(st.code(), errc::invalid_config);
    EXPECT_NE(st.message().find("--checkpoint-dir '" + bad +
                                "' cannot be "
                                "written"),
              std::string::npos)
        << st.message();
  }
}

TEST(output_checks, an_output_file_needs_a_writable_folder) {
  temp_dir dir;
  EXPECT_TRUE(detail::check_writable_file("-").ok());
  EXPECT_TRUE(detail::check_writable_file(dir.path() + "/new.txt").ok());
  EXPECT_FALSE(fs::exists(dir.path() + "/new.txt")) << "nothing is created";
  auto folder = detail::check_writable_file(dir.path());
  EXPECT_NE(folder.message().find("is a folder"), std::string::npos)
      << folder.message();
  auto missing = detail::check_writable_file(dir.path() + "/no/such/out.txt");
  EXPECT_NE(missing.message().find("does not exist"), std::string::npos)
      << missing.message();
  auto proc = detail::check_writable_file("/proc/new-output.txt");
  EXPECT_FALSE(proc.ok());
}

}  // namespace
}  // namespace stream
