#pragma once
// Work that need not delay an answer. After an incremental compile the engine
// writes the sandbox's cache files (half a megabyte of signed JSON for a
// 400-file project, fsynced) and counts the compile; a person waits for none
// of it. A long-running engine (the background engine, `sandbox serve`) runs
// such work on one background thread, in order, after the answer has gone;
// the work holds the sandbox's lock until it is done, so the next compile of
// that sandbox, by this engine or any other process, waits for it and then
// reads what it wrote. A one-shot command runs it at once, before it exits.
// What the work could not do (a cache not saved) is reported by the next
// compile of the same sandbox (take_deferred_warnings).

#include <functional>
#include <string>
#include <vector>

namespace sandbox::compiler {

// From now on, after_answer queues work for the background thread.
void enable_after_answer();
// Runs what is queued, then stops the thread: work runs at once again.
void drain_after_answer();

void after_answer(std::function<void()> work);
// True when after_answer queues (the work runs after the answer).
bool answers_first();

// Warnings for `owner` (a cache directory) left by work that ran after an
// answer, handed out once.
void defer_warning(const std::string& owner, std::string warning);
std::vector<std::string> take_deferred_warnings(const std::string& owner);

} // namespace sandbox::compiler
