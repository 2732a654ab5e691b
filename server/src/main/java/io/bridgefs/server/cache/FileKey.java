package io.bridgefs.server.cache;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;

/** The identity of a host file: (device, inode). Pages are keyed by this, never by path or export. */
public record FileKey(long dev, long ino) {
    public static FileKey of(Path path) throws IOException {
        int[] inherited = io.bridgefs.server.posix.Inherited.fileFds(path);
        if (inherited != null) {
            io.bridgefs.server.posix.Posix.Stat st = io.bridgefs.server.posix.Posix.fstat(inherited[0]);   // its path may be out of reach
            return new FileKey(st.dev(), st.ino());
        }
        long dev = ((Number) Files.getAttribute(path, "unix:dev", LinkOption.NOFOLLOW_LINKS)).longValue();
        long ino = ((Number) Files.getAttribute(path, "unix:ino", LinkOption.NOFOLLOW_LINKS)).longValue();
        return new FileKey(dev, ino);
    }
}
