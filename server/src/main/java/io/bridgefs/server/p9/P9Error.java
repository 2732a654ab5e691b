package io.bridgefs.server.p9;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.server.posix.Posix;
import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;

/** An operation's failure as a Linux errno for Rlerror. One table maps host errors to it. */
final class P9Error extends Exception {
    final int errno;

    P9Error(int errno, String message) {
        super(message, null, false, false);
        this.errno = errno;
    }

    static P9Error of(int errno) {
        return new P9Error(errno, "errno " + errno);
    }

    /** Whether the client caused it (logged quietly) rather than the host failing (logged as a warning). */
    boolean clientError() {
        return errno != P9.EIO && errno != P9.ENOSPC && errno != P9.EDQUOT && errno != P9.ENOMEM;
    }

    static P9Error from(IOException e) {
        if (e instanceof Posix.ErrnoException p) return new P9Error(p.errno(), e.getMessage());
        if (e instanceof NoSuchFileException) return new P9Error(P9.ENOENT, e.getMessage());
        if (e instanceof FileAlreadyExistsException) return new P9Error(P9.EEXIST, e.getMessage());
        if (e instanceof DirectoryNotEmptyException) return new P9Error(P9.ENOTEMPTY, e.getMessage());
        if (e instanceof NotDirectoryException) return new P9Error(P9.ENOTDIR, e.getMessage());
        if (e instanceof AccessDeniedException) return new P9Error(P9.EACCES, e.getMessage());
        String m = String.valueOf(e.getMessage());
        if (m.contains("No space left")) return new P9Error(P9.ENOSPC, m);
        if (m.contains("Disk quota")) return new P9Error(P9.EDQUOT, m);
        return new P9Error(P9.EIO, e.toString());
    }
}
