// A new client socket until its CONNECT is read, on whichever shard accepted it.
//
// The handshake waits up to connect_timeout_ms for one whole packet, which must be a valid CONNECT,
// and makes the checks that need no session: protocol version, client identifier, keep alive,
// authentication method, max_connections. A refused client gets the CONNACK that says why
// (MQTT 5.0 §3.2.2.2; 3.1.1 return codes in a 3.1.1 CONNACK) before the socket closes; a first
// packet that is not a CONNECT, or a malformed one, closes without an answer (§4.8 of 3.1.1,
// §4.13 of 5.0). An accepted CONNECT is handed, with the socket and any bytes read behind it, to
// the shard that owns its client id.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include "backend/socket_token.h"

namespace backend {

class Shard;

// Starts the handshake of a freshly accepted socket.
void StartHandshake(Shard& shard, boost::asio::ip::tcp::socket socket, SocketToken token);

}  // namespace backend
