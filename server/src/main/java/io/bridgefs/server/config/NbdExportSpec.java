package io.bridgefs.server.config;

import java.nio.file.Path;

/**
 * {@code NAME=PATH[,ro][,description=TEXT][,create=SIZE]}: an image file served over NBD. With
 * {@code create}, a missing file is created sparse with that size (used by the demo configuration).
 * The description, if given, comes last and may contain commas.
 */
public record NbdExportSpec(String name, Path path, boolean readOnly, String description, long createSize) {

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
        boolean ro = false;
        long create = 0;
        for (int i = 1; i < parts.length; i++) {
            String p = parts[i];
            if (p.equals("ro")) ro = true;
            else if (p.equals("rw")) ro = false;
            else if (p.startsWith("create=")) create = Sizes.parse(p.substring(7));
            else throw new IllegalArgumentException("'" + s + "': unknown export option '" + p + "' (ro, description=, create=)");
        }
        if (name.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > 4096) {
            throw new IllegalArgumentException("export name longer than 4096 bytes");
        }
        return new NbdExportSpec(name, Path.of(parts[0]), ro, description, create);
    }
}
