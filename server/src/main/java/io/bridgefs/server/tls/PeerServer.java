package io.bridgefs.server.tls;

import org.bouncycastle.tls.TlsServer;

/** A BouncyCastle TLS server that remembers who the client proved to be, and why a handshake failed. */
interface PeerServer extends TlsServer {
    /** The PSK identity or the client certificate's common name; null before the handshake or if none. */
    String identity();

    /** What went wrong, if the handshake failed (the alert raised or received, and its reason). */
    String failure();
}
