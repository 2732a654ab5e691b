package io.bridgefs.server.cache;

/** Write policy, with QEMU's meanings. */
public enum CacheMode {
    /** Writes stay dirty in the cache; written back on flush, FUA, fsync, timer, pressure and shutdown. */
    WRITEBACK,
    /** Every write is written to the backing file before it is acknowledged (not synced). */
    WRITETHROUGH,
    /** Every write is written and synced to stable storage before it is acknowledged. */
    DIRECTSYNC;

    public static CacheMode parse(String s) {
        return switch (s.toLowerCase(java.util.Locale.ROOT)) {
            case "writeback", "none" -> WRITEBACK;
            case "writethrough" -> WRITETHROUGH;
            case "directsync" -> DIRECTSYNC;
            default -> throw new IllegalArgumentException("unknown cache mode '" + s + "' (writeback, writethrough, directsync)");
        };
    }
}
