package io.bridgefs.server.p9;

import io.bridgefs.server.metrics.IoMetrics;
import java.nio.file.Path;

/** A host directory served over 9P. Its root is a hard boundary: nothing outside it is ever touched. */
public record P9Export(String name, Path root, boolean readOnly, int squashUid, int squashGid, boolean devices, IoMetrics metrics) {
    public boolean squash() { return squashUid >= 0; }
}
