package io.bridgefs.server;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Fields of a /proc stat file, numbered as in proc(5) (1 is the pid, 2 the parenthesised name). */
public final class ProcStat {
    private ProcStat() {}

    /** Field {@code n} (3 or later) of {@code task}/stat, where {@code task} is e.g. /proc/self or /proc/PID/task/TID. */
    public static long field(Path task, int n) throws IOException {
        String stat = Files.readString(task.resolve("stat"));
        // the name may hold spaces and parentheses: count from after its last ')'
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return Long.parseLong(f[n - 3]);
    }

    /** The nice value (field 19). */
    public static int nice(Path task) throws IOException {
        return (int) field(task, 19);
    }

    /** Minor page faults (field 10). */
    public static long minorFaults(Path task) throws IOException {
        return field(task, 10);
    }
}
