#pragma once
// RpcError: how an RPC handler fails, at the one boundary where Status turns
// into an exception (DESIGN.md: one error model per layer). The message is
// the whole description the peer sees: no file, line or type prefix added.
#include <kj/exception.h>
#include <kj/string.h>

#include <string>

namespace strata {

inline kj::Exception RpcError(const std::string& message) {
  return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(message.c_str()));
}

}  // namespace strata
