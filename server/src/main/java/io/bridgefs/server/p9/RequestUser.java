package io.bridgefs.server.p9;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Message;
import io.bridgefs.protocol.p9.P9Message.*;
import io.bridgefs.server.posix.Credentials;
import io.bridgefs.server.posix.Posix;
import java.io.IOException;

/**
 * Whose credentials a 9P request runs with (security=passthrough): the attaching user's, switched to
 * when the request looks up its first fid, on the thread that runs it, and kept there after it for the
 * next request (the I/O pool makes the thread the server again before any other task); shared-cache
 * work (opening a file's one backing store, write-back) runs as the server.
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

    /**
     * For a request answered on a network thread ({@link P9Ops#tryFast}): acts as the fid's user, and the
     * thread keeps acting as it for that user's next such request; false if the user's groups are not
     * known yet (reading /etc/group could wait: the executor runs the request). A failed switch throws,
     * the thread the server again.
     */
    static boolean actAsIfKnown(Fid f) throws IOException {
        if (asServer(f.export, f.uid)) {
            Credentials.serverAgain();
            return true;
        }
        Credentials.Identity id = Credentials.identityIfKnown(f.export.hostUid(f.uid));
        if (id == null) return false;
        Credentials.hold(id);
        return true;
    }

    /** Whether requests of {@code uid} run as the server itself: no passthrough, or root acting as root. */
    static boolean asServer(P9Export e, int uid) {
        return !e.passthrough() || e.hostUid(uid) == 0 && Credentials.SERVER_IS_ROOT;
    }

    /**
     * The requests whose handlers look up a fid ({@link #actAs}) before they touch the file system (the
     * Tremove and Tclunk handlers look theirs up as they take it out of the table: no file system call
     * comes before). On an I/O thread that still acts as the user of its last request, these keep that
     * user: the lookup switches if the fid is another's, and does nothing if it is the same user's.
     */
    private static final java.util.Set<Class<?>> LOOKS_UP_FID_FIRST = java.util.Set.of(
            Tread.class, Twrite.class, Twalk.class, Tgetattr.class, Tclunk.class, Tlopen.class, Treaddir.class,
            Txattrwalk.class, Tlcreate.class, Tsetattr.class, Tmkdir.class, Tunlinkat.class, Trenameat.class,
            Tsymlink.class, Treadlink.class, Tlink.class, Tmknod.class, Trename.class, Tremove.class, Tstatfs.class,
            Tfsync.class, Tlock.class, Tgetlock.class, Txattrcreate.class);

    /**
     * A request begins on the I/O thread, which the last request may have left acting as its user (not
     * switched back: {@link io.bridgefs.server.posix.ServerThreads.UserRequest}). Any request but those that look up
     * their fid first begins as the server.
     */
    static void requestBegins(P9Message m) {
        if (!LOOKS_UP_FID_FIRST.contains(m.getClass())) Credentials.serverAgain();
    }

    /**
     * The request ended. The thread keeps acting as its user: the next request on it is likely that user's
     * again (a switch and its undoing are eight system calls and two capsets, 19 us here); the next task that
     * is not a 9P request is the server's again before it runs.
     */
    static void requestEnded() {
        SWITCHED.get()[0] = false;
    }
}
