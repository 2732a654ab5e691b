package io.bridgefs.server.p9;

import io.bridgefs.server.metrics.IoMetrics;
import java.nio.file.Path;

/** A host directory served over 9P. Its root is a hard boundary: nothing outside it is ever touched. */
public record P9Export(String name, Path root, boolean readOnly, int squashUid, int squashGid, boolean devices, IoMetrics metrics,
                       boolean passthrough, boolean rootSquash) {

    public P9Export(String name, Path root, boolean readOnly, int squashUid, int squashGid, boolean devices, IoMetrics metrics) {
        this(name, root, readOnly, squashUid, squashGid, devices, metrics, false, false);
    }

    public boolean squash() { return squashUid >= 0; }

    /** The host uid a request of the attaching {@code uid} runs as (root=squash: root becomes nobody). */
    public int hostUid(int uid) { return rootSquash && uid == 0 ? 65534 : uid; }
}
