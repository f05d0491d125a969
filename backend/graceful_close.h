// Closing a client socket without losing the last packet.
//
// The broker often closes right after writing a final packet: a CONNACK refusing the client, a
// DISCONNECT with a reason code. Closing at once risks a TCP reset, which can destroy that packet
// before the client reads it (the client may still be sending). So: write what is pending, shut
// down the sending side, read and discard until the client closes, and close after a deadline
// whatever happens (a lingering close, as nginx does it).
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include "backend/out_buffer.h"
#include "backend/socket_token.h"

namespace backend {

// Takes over `socket`; writes `pending`, then closes within `linger`.
void CloseGracefully(boost::asio::ip::tcp::socket socket, OutBuffer pending, SocketToken token,
                     std::chrono::milliseconds linger = std::chrono::milliseconds(2000));

}  // namespace backend
