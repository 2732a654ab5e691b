package io.bridgefs.server.config;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code NAME=DIR[,ro][,security=passthrough|mapped|squash|none][,squash=UID:GID][,root=allow|squash]
 * [,hosts=CIDR[:CIDR...]][,create][,devices]}: a host directory served over 9P2000.L; the client's aname
 * selects it (an empty aname gets the first). {@code security} (see {@link P9Security}) left out means
 * passthrough where the server may switch credentials and none elsewhere ({@code squash=UID:GID} alone
 * means security=squash); {@code root=squash} makes a guest root nobody under passthrough;
 * {@code hosts} admits only peers in those ranges; {@code readahead=off|auto|SIZE} (default auto);
 * {@code create} creates DIR if it is missing (used by
 * the demo); {@code devices} lets clients create real device nodes under none/squash/passthrough (they
 * are still never opened on the host; under mapped they are plain files anyway).
 */
public record P9ExportSpec(String name, Path dir, boolean readOnly, int squashUid, int squashGid, boolean create, boolean devices,
                           P9Security security, boolean rootSquash, List<Cidr> hosts, io.bridgefs.server.cache.Readahead readahead) {

    public P9ExportSpec(String name, Path dir, boolean readOnly, int squashUid, int squashGid, boolean create, boolean devices) {
        this(name, dir, readOnly, squashUid, squashGid, create, devices, null, false, List.of(), io.bridgefs.server.cache.Readahead.auto(false));
    }

    /** The model this export runs: the one asked for, else passthrough when {@code privileged}, else none. */
    public P9Security securityFor(boolean privileged) {
        if (security != null) return security;
        if (squashUid >= 0) return P9Security.SQUASH;
        return privileged ? P9Security.PASSTHROUGH : P9Security.NONE;
    }

    public static P9ExportSpec parse(String s) {
        int eq = s.indexOf('=');
        if (eq < 0) throw new IllegalArgumentException("'" + s + "': expected NAME=DIR[,ro][,security=MODEL]");
        String name = s.substring(0, eq);
        String[] parts = s.substring(eq + 1).split(",");
        if (parts[0].isEmpty()) throw new IllegalArgumentException("'" + s + "': missing DIR");
        boolean ro = false, create = false, devices = false, rootSquash = false;
        P9Security security = null;
        List<Cidr> hosts = new ArrayList<>();
        io.bridgefs.server.cache.Readahead readahead = io.bridgefs.server.cache.Readahead.auto(false);
        int uid = -1, gid = -1;
        for (int i = 1; i < parts.length; i++) {
            String p = parts[i];
            if (p.equals("ro")) ro = true;
            else if (p.equals("rw")) ro = false;
            else if (p.equals("create")) create = true;
            else if (p.equals("devices")) devices = true;
            else if (p.startsWith("security=")) security = P9Security.parse(p.substring(9));
            else if (p.equals("root=squash")) rootSquash = true;
            else if (p.equals("root=allow")) rootSquash = false;
            else if (p.startsWith("hosts=")) hosts.addAll(Cidr.parseList(p.substring(6)));
            else if (p.startsWith("readahead=")) readahead = io.bridgefs.server.cache.Readahead.parse(p.substring(10), false);
            else if (p.startsWith("squash=")) {
                String[] ug = p.substring(7).split(":");
                try {
                    uid = Integer.parseInt(ug[0]);
                    gid = ug.length > 1 ? Integer.parseInt(ug[1]) : uid;
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("'" + s + "': squash takes numeric UID:GID");
                }
            } else throw new IllegalArgumentException("'" + s + "': unknown 9P export option '" + p
                    + "' (ro, security=passthrough|mapped|squash|none, squash=UID:GID, root=allow|squash, hosts=CIDR[:CIDR...], readahead=off|auto|SIZE, create, devices)");
        }
        if (uid >= 0 && security != null && security != P9Security.SQUASH) {
            throw new IllegalArgumentException("'" + s + "': squash=UID:GID goes with security=squash only");
        }
        if (security == P9Security.SQUASH && uid < 0) throw new IllegalArgumentException("'" + s + "': security=squash needs squash=UID:GID");
        if (rootSquash && security != null && security != P9Security.PASSTHROUGH) {
            throw new IllegalArgumentException("'" + s + "': root=squash applies to security=passthrough");
        }
        return new P9ExportSpec(name, Path.of(parts[0]), ro, uid, gid, create, devices, security, rootSquash, List.copyOf(hosts), readahead);
    }
}
