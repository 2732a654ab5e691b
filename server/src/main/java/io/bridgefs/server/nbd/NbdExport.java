package io.bridgefs.server.nbd;

import io.bridgefs.protocol.nbd.NbdConstants;
import io.bridgefs.server.cache.CachedFile;
import io.bridgefs.server.metrics.IoMetrics;
import java.nio.file.Path;

/**
 * An image file served over NBD through the shared cache (its size fixed for the export's life), or a
 * host directory served as a read-only ext4 image ({@code bridged}, with {@code file} null).
 */
public record NbdExport(String name, String description, Path path, boolean readOnly, CachedFile file, IoMetrics metrics,
                        boolean tlsOnly, java.util.List<String> users, java.util.List<io.bridgefs.server.config.Cidr> hosts,
                        io.bridgefs.server.bridged.BridgedDisk bridged) {

    public NbdExport(String name, String description, Path path, boolean readOnly, CachedFile file, IoMetrics metrics,
                     boolean tlsOnly, java.util.List<String> users, java.util.List<io.bridgefs.server.config.Cidr> hosts) {
        this(name, description, path, readOnly, file, metrics, tlsOnly, users, hosts, null);
    }

    public NbdExport(String name, String description, Path path, boolean readOnly, CachedFile file, IoMetrics metrics) {
        this(name, description, path, readOnly, file, metrics, false, java.util.List.of());
    }

    public NbdExport(String name, String description, Path path, boolean readOnly, CachedFile file, IoMetrics metrics,
                     boolean tlsOnly, java.util.List<String> users) {
        this(name, description, path, readOnly, file, metrics, tlsOnly, users, java.util.List.of());
    }

    /** Whether a client that authenticated as {@code identity} (null: not at all) may use this export. */
    public boolean allows(String identity) {
        return users.isEmpty() || (identity != null && users.contains(identity));
    }

    /** Largest request payload (read or write) the server accepts: 32 MiB, as qemu-nbd. */
    public static final int MAX_PAYLOAD = 32 * 1024 * 1024;
    public static final int PREFERRED_BLOCK = 4096;

    public long size() { return bridged != null ? bridged.size() : file.size(); }

    public int transmissionFlags(boolean structuredReplies) {
        int f = NbdConstants.NBD_FLAG_HAS_FLAGS | NbdConstants.NBD_FLAG_SEND_FLUSH | NbdConstants.NBD_FLAG_SEND_FUA
                | NbdConstants.NBD_FLAG_SEND_CACHE | NbdConstants.NBD_FLAG_CAN_MULTI_CONN;
        if (readOnly) {
            f |= NbdConstants.NBD_FLAG_READ_ONLY;
        } else {
            f |= NbdConstants.NBD_FLAG_SEND_TRIM | NbdConstants.NBD_FLAG_SEND_WRITE_ZEROES;
            if (file != null && file.sparse()) f |= NbdConstants.NBD_FLAG_SEND_FAST_ZERO;
        }
        if (structuredReplies) f |= NbdConstants.NBD_FLAG_SEND_DF;
        return f;
    }
}
