package io.bridgefs.server.config;

import java.nio.file.Path;

/**
 * {@code NAME=PATH[,ro][,description=TEXT][,create=SIZE]}: an image file served over NBD. With
 * {@code create}, a missing file is created sparse with that size (used by the demo configuration).
 * The description, if given, comes last and may contain commas. {@code tls-only}: served only over TLS
 * (with {@code --tls on}); {@code users=NAME[:NAME...]}: only to these PSK identities or certificate
 * common names; {@code hosts=CIDR[:CIDR...]}: only to peers in those ranges (others are not told it exists);
 * {@code readahead=off|auto|SIZE} (default auto, starting small: the guest reads ahead itself).
 * {@code bridged}: PATH is a directory, served read-only as an ext4 image whose data blocks are the
 * host files' own pages in the shared cache (see {@link io.bridgefs.server.bridged}); {@code entries=N}:
 * a bridged tree of more than N names is refused (default 250,000; each costs heap, and the JVM's heap
 * is sized for it).
 */
public record NbdExportSpec(String name, Path path, boolean readOnly, String description, long createSize, boolean tlsOnly,
                            java.util.List<String> users, java.util.List<Cidr> hosts, io.bridgefs.server.cache.Readahead readahead,
                            boolean bridged, int maxEntries) {
    /** Names a bridged tree may have unless {@code entries=} says otherwise. */
    public static final int DEFAULT_MAX_ENTRIES = 250_000;

    public NbdExportSpec(String name, Path path, boolean readOnly, String description, long createSize, boolean tlsOnly,
                         java.util.List<String> users, java.util.List<Cidr> hosts, io.bridgefs.server.cache.Readahead readahead) {
        this(name, path, readOnly, description, createSize, tlsOnly, users, hosts, readahead, false, DEFAULT_MAX_ENTRIES);
    }

    public NbdExportSpec(String name, Path path, boolean readOnly, String description, long createSize) {
        this(name, path, readOnly, description, createSize, false, java.util.List.of(), java.util.List.of(),
                io.bridgefs.server.cache.Readahead.auto(true));
    }

    public static NbdExportSpec parse(String s) {
        int eq = s.indexOf('=');
        if (eq < 0) throw new IllegalArgumentException("'" + s + "': expected NAME=PATH[,ro][,description=TEXT]");
        String name = s.substring(0, eq);
        if (name.equals("\"\"") || name.equals("''")) name = "";
        String rest = s.substring(eq + 1);
        String description = null;
        int d = rest.indexOf(",description=");
        if (d >= 0) {
            description = rest.substring(d + ",description=".length());
            rest = rest.substring(0, d);
        }
        String[] parts = rest.split(",");
        if (parts[0].isEmpty()) throw new IllegalArgumentException("'" + s + "': missing PATH");
        boolean ro = false, tlsOnly = false, bridged = false;
        long create = 0;
        int entries = DEFAULT_MAX_ENTRIES;
        boolean entriesGiven = false;
        java.util.List<String> users = java.util.List.of();
        java.util.List<Cidr> hosts = java.util.List.of();
        io.bridgefs.server.cache.Readahead readahead = io.bridgefs.server.cache.Readahead.auto(true);
        for (int i = 1; i < parts.length; i++) {
            String p = parts[i];
            if (p.equals("ro")) ro = true;
            else if (p.equals("rw")) ro = false;
            else if (p.startsWith("create=")) create = Sizes.parse(p.substring(7));
            else if (p.equals("tls-only")) tlsOnly = true;
            else if (p.equals("bridged")) bridged = true;
            else if (p.startsWith("users=") && p.length() > 6) users = java.util.List.of(p.substring(6).split(":"));
            else if (p.startsWith("hosts=")) hosts = Cidr.parseList(p.substring(6));
            else if (p.startsWith("readahead=")) readahead = io.bridgefs.server.cache.Readahead.parse(p.substring(10), true);
            else if (p.startsWith("entries=")) {
                entries = entries(s, p.substring(8));
                entriesGiven = true;
            }
            else throw new IllegalArgumentException("'" + s + "': unknown export option '" + p + "' (ro, bridged, entries=N, create=, tls-only, users=NAME[:NAME...], hosts=CIDR[:CIDR...], readahead=off|auto|SIZE, description=)");
        }
        if (name.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > 4096) {
            throw new IllegalArgumentException("export name longer than 4096 bytes");
        }
        if (bridged && create > 0) throw new IllegalArgumentException("'" + s + "': a bridged export serves an existing directory; create= does not apply");
        if (entriesGiven && !bridged) throw new IllegalArgumentException("'" + s + "': entries= applies to a bridged export only");
        return new NbdExportSpec(name, Path.of(parts[0]), ro || bridged, description, create, tlsOnly, users, hosts, readahead, bridged, entries);
    }

    private static int entries(String spec, String v) {
        long n;
        try {
            n = Long.parseLong(v);
        } catch (NumberFormatException e) {
            n = -1;
        }
        if (n < 1 || n > 100_000_000) throw new IllegalArgumentException("'" + spec + "': entries= takes a count from 1 to 100000000, not '" + v + "'");
        return (int) n;
    }
}
