package io.bridgefs.server.config;

/**
 * How a 9P export maps the guest's users onto the host (QEMU's names where it has them).
 * <ul>
 * <li>{@code passthrough}: every request runs with the attaching user's fsuid, fsgid and groups, so the
 *     host's own permission checks apply and files belong to that user (needs root or CAP_SETUID,
 *     CAP_SETGID and the file capabilities);</li>
 * <li>{@code mapped}: host files belong to the server's user with modes only it can use; the guest's
 *     uid, gid, mode and device number live in {@code user.virtfs.*} xattrs (QEMU's mapped-xattr
 *     layout), so setuid programs and device nodes exist only as the guest sees them (no privilege);</li>
 * <li>{@code squash}: every file the server creates or chowns belongs to one fixed UID:GID;</li>
 * <li>{@code none}: requests run as the server and ownership is set as the client asks.</li>
 * </ul>
 */
public enum P9Security {
    NONE, PASSTHROUGH, MAPPED, SQUASH;

    public String label() { return name().toLowerCase(); }

    public static P9Security parse(String s) {
        for (P9Security v : values()) if (v.label().equals(s)) return v;
        throw new IllegalArgumentException("security=" + s + ": expected passthrough, mapped, squash or none");
    }
}
