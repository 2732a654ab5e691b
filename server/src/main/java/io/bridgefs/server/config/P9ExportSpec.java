package io.bridgefs.server.config;

import java.nio.file.Path;

/**
 * {@code NAME=DIR[,ro][,squash=UID:GID][,create]}: a host directory served over 9P2000.L; the client's
 * aname selects it (an empty aname gets the first). {@code squash} makes every file the server creates
 * or chowns belong to UID:GID; {@code create} creates DIR if it is missing (used by the demo);
 * {@code devices} lets clients create device nodes (they are still never opened on the host).
 */
public record P9ExportSpec(String name, Path dir, boolean readOnly, int squashUid, int squashGid, boolean create, boolean devices,
                           boolean passthrough, boolean rootSquash) {

    public P9ExportSpec(String name, Path dir, boolean readOnly, int squashUid, int squashGid, boolean create, boolean devices) {
        this(name, dir, readOnly, squashUid, squashGid, create, devices, false, false);
    }

    public static P9ExportSpec parse(String s) {
        int eq = s.indexOf('=');
        if (eq < 0) throw new IllegalArgumentException("'" + s + "': expected NAME=DIR[,ro][,squash=UID:GID]");
        String name = s.substring(0, eq);
        String[] parts = s.substring(eq + 1).split(",");
        if (parts[0].isEmpty()) throw new IllegalArgumentException("'" + s + "': missing DIR");
        boolean ro = false, create = false, devices = false, passthrough = false, rootSquash = false;
        int uid = -1, gid = -1;
        for (int i = 1; i < parts.length; i++) {
            String p = parts[i];
            if (p.equals("ro")) ro = true;
            else if (p.equals("rw")) ro = false;
            else if (p.equals("create")) create = true;
            else if (p.equals("devices")) devices = true;
            else if (p.equals("security=passthrough")) passthrough = true;
            else if (p.equals("security=none")) passthrough = false;
            else if (p.equals("root=squash")) rootSquash = true;
            else if (p.equals("root=allow")) rootSquash = false;
            else if (p.startsWith("squash=")) {
                String[] ug = p.substring(7).split(":");
                try {
                    uid = Integer.parseInt(ug[0]);
                    gid = ug.length > 1 ? Integer.parseInt(ug[1]) : uid;
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("'" + s + "': squash takes numeric UID:GID");
                }
            } else throw new IllegalArgumentException("'" + s + "': unknown 9P export option '" + p + "' (ro, squash=UID:GID, create, devices, security=passthrough|none, root=allow|squash)");
        }
        if (passthrough && uid >= 0) throw new IllegalArgumentException("'" + s + "': squash= and security=passthrough exclude each other");
        return new P9ExportSpec(name, Path.of(parts[0]), ro, uid, gid, create, devices, passthrough, rootSquash);
    }
}
