package io.bridgefs.server.p9;

import io.bridgefs.server.config.Cidr;
import io.bridgefs.server.config.P9Security;
import io.bridgefs.server.metrics.IoMetrics;
import java.nio.file.Path;
import java.util.List;

/** A host directory served over 9P. Its root is a hard boundary: nothing outside it is ever touched. */
public record P9Export(String name, Path root, boolean readOnly, int squashUid, int squashGid, boolean devices, IoMetrics metrics,
                       P9Security security, boolean rootSquash, List<Cidr> hosts, io.bridgefs.server.cache.Readahead readahead) {

    public P9Export(String name, Path root, boolean readOnly, int squashUid, int squashGid, boolean devices, IoMetrics metrics) {
        this(name, root, readOnly, squashUid, squashGid, devices, metrics, squashUid >= 0 ? P9Security.SQUASH : P9Security.NONE, false, List.of(),
                io.bridgefs.server.cache.Readahead.auto(false));
    }

    public P9Export(String name, Path root, boolean readOnly, int squashUid, int squashGid, boolean devices, IoMetrics metrics,
                    P9Security security, boolean rootSquash, List<Cidr> hosts) {
        this(name, root, readOnly, squashUid, squashGid, devices, metrics, security, rootSquash, hosts, io.bridgefs.server.cache.Readahead.auto(false));
    }

    public boolean squash() { return security == P9Security.SQUASH; }

    public boolean passthrough() { return security == P9Security.PASSTHROUGH; }

    public boolean mapped() { return security == P9Security.MAPPED; }

    /** The host uid a request of the attaching {@code uid} runs as (root=squash: root becomes nobody). */
    public int hostUid(int uid) { return rootSquash && uid == 0 ? 65534 : uid; }

    /** One line for start-up and the connect help: the model and what it means here. */
    public String describeSecurity() {
        return switch (security) {
            case PASSTHROUGH -> "security=passthrough (requests run as the attaching user" + (rootSquash ? ", root squashed to nobody" : "") + ")";
            case MAPPED -> "security=mapped (host files belong to the server's user; the guest's owners, modes and devices live in user.virtfs.* xattrs)";
            case SQUASH -> "security=squash (files created or chowned belong to " + squashUid + ":" + squashGid + ")";
            case NONE -> "security=none (requests run as the server; ownership as the client sets it)";
        };
    }
}
