package io.bridgefs.server.nbd;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The NBD exports of a server, by name; the empty name selects the default (named "" or else the first). */
public final class NbdExports {
    private final Map<String, NbdExport> byName = new LinkedHashMap<>();

    public NbdExports(List<NbdExport> exports) {
        for (NbdExport e : exports) {
            if (byName.putIfAbsent(e.name(), e) != null) throw new IllegalArgumentException("duplicate NBD export name '" + e.name() + "'");
        }
    }

    public NbdExport find(String name) {
        NbdExport e = byName.get(name);
        if (e == null && name.isEmpty() && !byName.isEmpty()) e = byName.values().iterator().next();
        return e;
    }

    public List<NbdExport> all() { return List.copyOf(byName.values()); }
}
