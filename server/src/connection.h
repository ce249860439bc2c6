#pragma once
// Noticing a client that went away while its request waits for tokens. httplib 0.11 does not hand
// the socket to handlers, so we find it by its addresses; writes failing remain the fallback.
#include <string>

namespace lmw::server {

// The connected socket whose local/peer ports and peer address match; -1 if none.
int findConnectionSocket(const std::string& remoteAddr, int remotePort, int localPort);
// True when the peer closed or reset the connection (poll, non-blocking). -1 -> false.
bool peerGone(int fd);

}  // namespace lmw::server
