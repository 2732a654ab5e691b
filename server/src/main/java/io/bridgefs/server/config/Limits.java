package io.bridgefs.server.config;

/**
 * What one client, or all of them, may hold of the server.
 *
 * @param requestMemory bytes of requests read but not yet answered and of replies not yet taken by the
 *     client, across every connection of both paths; past it connections stop being read
 * @param maxConnections connections per listener; more are closed as they arrive
 * @param maxConnectionsPerPeer connections per listener from one peer address
 * @param idleTimeoutSeconds a connection with nothing in flight and no traffic this long is closed (0: never)
 * @param stallTimeoutSeconds a connection whose client takes none of its queued replies, or leaves a large frame unfinished, this long is closed
 * @param allow peer address ranges the NBD and 9P listeners accept ({@code --allow}); empty: every peer
 * @param handshakeLimitSeconds a connection that has not finished negotiating this long after it was
 *     accepted (NBD: NBD_OPT_GO or NBD_OPT_EXPORT_NAME, TLS included; 9P: a successful Tattach) is closed
 *     (0: never), as qemu-nbd's --handshake-limit (CVE-2024-7409)
 * @param maxFids 9P fids of all connections together ({@code --max-fids}; each takes heap, and the
 *     JVM's heap is sized for them): past half of it, a connection holding more than its share (this
 *     over the connections) gets no more, and past it none does
 */
public record Limits(long requestMemory, int maxConnections, int maxConnectionsPerPeer, int idleTimeoutSeconds,
                     int stallTimeoutSeconds, java.util.List<Cidr> allow, int maxFids, int handshakeLimitSeconds) {
    public static final int DEFAULT_HANDSHAKE_LIMIT = 10;
    public static final int DEFAULT_MAX_FIDS = 65_536;
    /** Heap a fid takes at most, with its path (see P9FidReclaimTest). */
    public static final long FID_HEAP_BYTES = 1024;
    public static final Limits DEFAULT = new Limits(128L << 20, 1024, 256, 0, 60, java.util.List.of(), DEFAULT_MAX_FIDS,
            DEFAULT_HANDSHAKE_LIMIT);

    public Limits(long requestMemory, int maxConnections, int maxConnectionsPerPeer, int idleTimeoutSeconds, int stallTimeoutSeconds) {
        this(requestMemory, maxConnections, maxConnectionsPerPeer, idleTimeoutSeconds, stallTimeoutSeconds, java.util.List.of(), DEFAULT_MAX_FIDS,
                DEFAULT_HANDSHAKE_LIMIT);
    }

    /** Whether a TCP peer may connect (unix-socket peers are governed by the socket file's permissions). */
    public boolean allows(java.net.InetAddress peer) {
        if (allow.isEmpty()) return true;
        for (Cidr c : allow) if (c.contains(peer)) return true;
        return false;
    }

    public Limits {
        if (requestMemory < (4L << 20)) throw new IllegalArgumentException("--request-memory must be at least 4m");
        if (maxConnections < 1) throw new IllegalArgumentException("--max-connections must be at least 1");
        if (maxConnectionsPerPeer < 1) throw new IllegalArgumentException("--max-connections-per-peer must be at least 1");
        if (idleTimeoutSeconds < 0) throw new IllegalArgumentException("--idle-timeout must be >= 0");
        if (stallTimeoutSeconds < 1) throw new IllegalArgumentException("--stall-timeout must be at least 1");
        if (handshakeLimitSeconds < 0) throw new IllegalArgumentException("--handshake-limit must be >= 0");
        if (maxFids < 64 || maxFids > 100_000_000) throw new IllegalArgumentException("--max-fids must be between 64 and 100000000");
        allow = java.util.List.copyOf(allow);
    }
}
