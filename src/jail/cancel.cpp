#include "jail/cancel.h"

#include <utility>

namespace sandbox::jail {

namespace {
thread_local std::shared_ptr<const CancelToken> t_token;
} // namespace

ScopedCancellation::ScopedCancellation(std::shared_ptr<const CancelToken> token)
    : m_previous(std::exchange(t_token, std::move(token)))
{
}

ScopedCancellation::~ScopedCancellation() { t_token = std::move(m_previous); }

bool cancellation_requested() noexcept { return t_token && t_token->cancelled(); }

} // namespace sandbox::jail
