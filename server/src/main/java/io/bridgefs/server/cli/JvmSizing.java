package io.bridgefs.server.cli;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Native;
import io.bridgefs.server.cache.DedupMode;
import io.bridgefs.server.cache.MetadataHeap;
import io.bridgefs.server.config.Limits;
import io.bridgefs.server.config.Sizes;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Sizes the JVM for the server's memory budget. A JVM started without {@code -Xmx} may grow its heap
 * to a quarter of the machine's memory and its direct memory as far again; then RSS follows what
 * clients do rather than {@code --cache-size}. So {@code serve}, when the JVM was started without
 * those limits, replaces itself in place (execv: the same process id, the same signals, the same
 * standard streams) with a JVM given a heap that grows with the cache's page count and a direct-memory
 * limit of the cache plus the request budget plus a margin. Limits given by the user are kept.
 * {@code BRIDGEFS_NO_REEXEC=1} turns this off.
 */
final class JvmSizing {
    static final String MARK = "-Dbridgefs.jvm.sized=true";
    /**
     * Heap the server needs besides the cache's per-page metadata ({@link MetadataHeap#estimate}:
     * 166 bytes a page, 284 with --dedup merge, which keeps two keys a frame) and the closed files it
     * keeps for their pages ({@link MetadataHeap#closedFilesHeap}: one per four pages, 1 KiB each at
     * most), the trees of bridged exports ({@link #treeHeap}) and 9P fids ({@code --max-fids}, 1 KiB each
     * at most): open files, sessions and metrics.
     */
    static final long BASE_HEAP = 96L << 20;
    static final long DIRECT_MARGIN = 64L << 20;

    private interface LibC extends Library {
        int execv(String path, String[] argv) throws LastErrorException;
    }

    private JvmSizing() {}

    static long heapFor(long cacheBytes, DedupMode dedup, long treeEntries, int maxFids) {
        return BASE_HEAP + MetadataHeap.estimate(cacheBytes, dedup) + MetadataHeap.closedFilesHeap(cacheBytes) + treeHeap(treeEntries)
                + maxFids * Limits.FID_HEAP_BYTES;
    }

    /** {@code --max-fids} in the merged arguments (a bad value is the command's to report: the default meanwhile). */
    static int maxFids(List<String> argv) {
        String v = option(argv, "--max-fids");
        try {
            return v == null ? Limits.DEFAULT_MAX_FIDS : Math.max(0, Integer.parseInt(v.trim()));
        } catch (NumberFormatException e) {
            return Limits.DEFAULT_MAX_FIDS;
        }
    }

    /**
     * Heap for bridged trees of this many entries in all (each export's {@code entries=}): twice, as a
     * rescan builds the new tree before the old one goes.
     */
    static long treeHeap(long treeEntries) {
        return 2 * treeEntries * io.bridgefs.server.bridged.HostTree.ENTRY_HEAP_BYTES;
    }

    /** The entries the bridged exports in the merged arguments may have, in all (bad specs are the command's to report). */
    static long bridgedEntries(List<String> argv) {
        long n = 0;
        for (String v : options(argv, "--nbd-export")) {
            try {
                io.bridgefs.server.config.NbdExportSpec spec = io.bridgefs.server.config.NbdExportSpec.parse(v);
                if (spec.bridged()) n += spec.maxEntries();
            } catch (RuntimeException e) {
                // reported by the command
            }
        }
        return n;
    }

    static long directFor(long cacheBytes, long requestBudget) {
        return cacheBytes + requestBudget + DIRECT_MARGIN;
    }

    /**
     * Re-executes the JVM with limits when needed; returns only if nothing was done (already sized, not
     * run from a jar, or exec failed, which is reported and otherwise ignored).
     */
    static void ensureSized(String[] originalArgs, long cacheBytes, DedupMode dedup, long treeEntries, int maxFids, long requestBudget,
                            UserDrop.Plan drop) throws java.io.IOException {
        List<String> jvmArgs = ManagementFactory.getRuntimeMXBean().getInputArguments();
        boolean mustDrop = UserDrop.needed(drop, jvmArgs);
        boolean sized = System.getenv("BRIDGEFS_NO_REEXEC") != null || jvmArgs.contains(MARK)
                || (given(jvmArgs, "-Xmx", "-XX:MaxHeapSize") && given(jvmArgs, "-XX:MaxDirectMemorySize"));
        if (sized && !mustDrop) return;
        Path jar = null;
        try {
            jar = Path.of(JvmSizing.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (Exception e) {
            // not from a jar: handled below
        }
        String java = ProcessHandle.current().info().command().orElse(null);
        if (java == null || jar == null || !Files.isRegularFile(jar) || !jar.toString().endsWith(".jar")) {
            if (mustDrop) throw new java.io.IOException("--user needs the server started from its jar (java -jar bridgefs.jar)");
            return;
        }
        List<String> argv = new ArrayList<>();
        argv.add(java);
        if (!sized) {
            argv.addAll(addedFlags(jvmArgs, heapFor(cacheBytes, dedup, treeEntries, maxFids), directFor(cacheBytes, requestBudget)));
            argv.add(MARK);
        }
        if (mustDrop) argv.add(UserDrop.MARK);
        argv.addAll(jvmArgs);
        argv.add("-jar");
        argv.add(jar.toString());
        argv.addAll(List.of(originalArgs));
        System.out.flush();
        System.err.flush();
        if (mustDrop) UserDrop.apply(drop);
        try {
            Native.load("c", LibC.class).execv(java, argv.toArray(String[]::new));
        } catch (LastErrorException | UnsatisfiedLinkError e) {
            if (mustDrop) throw new java.io.IOException("could not restart as --user " + drop.user() + ": " + e.getMessage());
            System.err.println("bridgefs: could not restart the JVM with memory limits (" + e.getMessage()
                    + "); running with the JVM's defaults: set -Xmx and -XX:MaxDirectMemorySize yourself");
        }
    }

    /**
     * What the re-executed JVM gets besides the user's own flags, each only where the user gave none of
     * its kind: the heap and direct-memory limits; {@code -XX:+ExitOnOutOfMemoryError} (a server whose
     * event loop died of OutOfMemoryError accepts connections and answers none: it exits instead, so that
     * a supervisor restarts it); and C2 without speculative branch pruning ({@code PerMethodTrapLimit=0},
     * {@code PerBytecodeTrapLimit=0}): by default C2 compiles only the branches a method's profile has
     * seen and traps out of the compiled code when another is taken, then recompiles. A cache server's
     * branches change with its clients' workload (all hits for an hour, then a scan of cold data fills and
     * evicts), and each change cost a storm of deoptimisations and recompiles: with a JVM warmed on
     * cached reads, C2 used 0.5-1.05 s of CPU during the first 1 GiB cold read, 0.04-0.44 s with these
     * flags, and the cached reads ran no slower (session 16, nbd-bench's server by hand).
     */
    static List<String> addedFlags(List<String> jvmArgs, long heapBytes, long directBytes) {
        List<String> flags = new ArrayList<>();
        if (!given(jvmArgs, "-Xmx", "-XX:MaxHeapSize")) flags.add("-Xmx" + (heapBytes >> 20) + "m");
        if (!given(jvmArgs, "-XX:MaxDirectMemorySize")) flags.add("-XX:MaxDirectMemorySize=" + (directBytes >> 20) + "m");
        if (jvmArgs.stream().noneMatch(a -> a.contains("OnOutOfMemoryError"))) flags.add("-XX:+ExitOnOutOfMemoryError");
        for (String trapLimit : List.of("-XX:PerMethodTrapLimit=", "-XX:PerBytecodeTrapLimit=")) {
            if (!given(jvmArgs, trapLimit)) flags.add(trapLimit + "0");
        }
        return flags;
    }

    /** Whether the user started the JVM with a flag beginning with one of {@code prefixes}. */
    private static boolean given(List<String> jvmArgs, String... prefixes) {
        for (String a : jvmArgs) {
            for (String p : prefixes) if (a.startsWith(p)) return true;
        }
        return false;
    }

    /** The value of {@code --NAME VALUE} or {@code --NAME=VALUE} in the merged arguments, or null. */
    static String option(List<String> argv, String name) {
        List<String> values = options(argv, name);       // the last one wins, as on the command line
        return values.isEmpty() ? null : values.get(values.size() - 1);
    }

    /** Every value of a repeatable {@code --NAME VALUE} / {@code --NAME=VALUE} in the merged arguments. */
    static List<String> options(List<String> argv, String name) {
        List<String> values = new ArrayList<>();
        for (int i = 0; i < argv.size(); i++) {
            String a = argv.get(i);
            if (a.equals(name) && i + 1 < argv.size()) values.add(argv.get(++i));
            else if (a.startsWith(name + "=")) values.add(a.substring(name.length() + 1));
        }
        return values;
    }

    /** The --dedup mode in the merged arguments (the command itself reports a bad value: the default meanwhile). */
    static DedupMode dedup(List<String> argv) {
        String v = option(argv, "--dedup");
        try {
            return DedupMode.parse(v == null ? ServeCommand.DEFAULT_DEDUP : v);
        } catch (RuntimeException e) {
            return DedupMode.parse(ServeCommand.DEFAULT_DEDUP);
        }
    }

    static long size(List<String> argv, String name, String fallback) {
        String v = option(argv, name);
        try {
            return Sizes.parse(v == null ? fallback : v);
        } catch (RuntimeException e) {
            return Sizes.parse(fallback);     // the command itself reports the bad value
        }
    }
}
