package io.bridgefs.server.p9;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.server.posix.Credentials;
import io.bridgefs.server.posix.Posix;
import java.io.IOException;

/**
 * Whose credentials a 9P request runs with (security=passthrough): the attaching user's, switched once
 * per request on the thread that runs it, back to the server's when the request ends; shared-cache work
 * (opening a file's one backing store) runs as the server.
 */
final class RequestUser {
    /** Whether this thread runs the current request with the attaching user's credentials. */
    private static final ThreadLocal<boolean[]> SWITCHED = ThreadLocal.withInitial(() -> new boolean[1]);

    private RequestUser() {}

    /** Fails with the host's errno (EACCES) unless the request's user may open the fid's file for that access. */
    static void mayOpen(Fid f, boolean read, boolean write) throws IOException {
        if (!SWITCHED.get()[0]) return;        // acting as the server itself (root as root): it may
        int mode = read && write ? Posix.O_RDWR : write ? 1 : Posix.O_RDONLY;     // O_WRONLY = 1
        Posix.close(Posix.open(f.procPath(), mode));
    }

    /**
     * security=passthrough: the rest of this request runs with the host credentials of {@code uid} (the
     * attaching user; root squashed with root=squash), so the host's permission checks apply. Once per
     * request: the first fid looked up decides.
     */
    static void actAs(P9Export e, int uid) throws P9Error {
        boolean[] on = SWITCHED.get();
        if (asServer(e, uid)) {
            if (!on[0]) Credentials.serverAgain();      // a thread may hold a walk's user between requests
            return;
        }
        if (on[0]) return;
        int hostUid = e.hostUid(uid);
        try {
            Credentials.hold(Credentials.identity(hostUid));
        } catch (IOException x) {
            throw new P9Error(P9.EPERM, "cannot act as uid " + uid + ": " + x.getMessage());
        }
        on[0] = true;
    }

    /** Whether requests of {@code uid} run as the server itself: no passthrough, or root acting as root. */
    static boolean asServer(P9Export e, int uid) {
        return !e.passthrough() || e.hostUid(uid) == 0 && Credentials.SERVER_IS_ROOT;
    }

    /** The request ended: the thread acts as the server again. */
    static void requestEnded() {
        boolean[] on = SWITCHED.get();
        if (on[0]) {
            Credentials.restore();
            on[0] = false;
        }
    }
}
