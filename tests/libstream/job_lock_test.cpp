#include "stream/checkpoint/job_lock.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace fs = std::filesystem;
using stream::checkpoint::job_lock;

class job_lock_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/stream-lock-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string folder() const { return dir_ + "/checkpoints/job"; }

  std::string dir_;
};

TEST_F(job_lock_test, a_second_lock_is_refused_naming_the_holder) {
  auto first = job_lock::acquire(folder(), "coordinator");
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_EQ(first->path(), folder() + "/.lock");
  auto second = job_lock::acquire(folder(), "local role");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), stream::errc::invalid_config);
  const std::string& message = second.error().message();
  EXPECT_NE(message.find("'" + folder() +
                         "' is in use by another run of "
                         "this job: pid " +
                         std::to_string(::getpid()) + " on "),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("(coordinator, since 20"), std::string::npos)
      << message;
}

TEST_F(job_lock_test, is_free_again_once_released_or_moved_from) {
  {
    auto first = job_lock::acquire(folder(), "coordinator");
    ASSERT_TRUE(first.ok());
    job_lock moved = std::move(*first);
    EXPECT_FALSE(job_lock::acquire(folder(), "again").ok());
  }
  auto again = job_lock::acquire(folder(), "again");
  ASSERT_TRUE(again.ok()) << again.error().message();
  std::ifstream in{folder() + "/.lock"};
  std::string line;
  std::getline(in, line);
  EXPECT_NE(line.find("(again, since "), std::string::npos) << line;
}

TEST_F(job_lock_test, the_lock_of_a_killed_process_is_free) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    auto lock = job_lock::acquire(folder(), "child");
    const char byte = lock.ok() ? '1' : '0';
    [[maybe_unused]] auto n = ::write(ready[1], &byte, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(byte, '1');
  auto refused = job_lock::acquire(folder(), "parent");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("pid " + std::to_string(child)),
            std::string::npos)
      << refused.error().message();
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  auto taken = job_lock::acquire(folder(), "parent");
  EXPECT_TRUE(taken.ok()) << taken.error().message();
}

TEST_F(job_lock_test, a_folder_that_cannot_be_made_is_an_io_error) {
  std::ofstream{dir_ + "/file"} << "x";
  auto lock = job_lock::acquire(dir_ + "/file/job", "coordinator");
  ASSERT_FALSE(lock.ok());
  EXPECT_EQ(lock.error().code(), stream::errc::io_error);
  EXPECT_NE(lock.error().message().find(dir_ + "/file/job/.lock"),
            std::string::npos)
      << lock.error().message();
}

}  // namespace
