// Test helpers for user-facing failures: the message of the qnnc::Error a call throws, and a
// substring expectation that prints the message when it fails.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "ir/graph.h"

// Message of the qnnc::Error thrown by f; fails the test when f throws something else or nothing.
template <typename F>
std::string qnnc_error(F f) {
  try {
    f();
  } catch (const qnnc::Error &e) {
    return e.what();
  } catch (const std::exception &e) {
    ADD_FAILURE() << "expected qnnc::Error, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected qnnc::Error, nothing was thrown";
  return "";
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)
