package io.bridgefs.server.posix;

/** For tests of acting as other users: only a root server switches users (CI runs as root). */
public final class SwitchesUsers {
    private SwitchesUsers() {}

    /** Whether this JVM may act as other users; if not, says on stderr that {@code what} is NOT checked. */
    public static boolean orSay(String what) {
        if (!Credentials.SERVER_IS_ROOT) System.err.println(what + " NOT checked: only a root server switches users (CI runs as root)");
        return Credentials.SERVER_IS_ROOT;
    }
}
