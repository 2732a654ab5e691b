package io.bridgefs.server.cli;

import io.bridgefs.server.config.ListenAddress;
import io.bridgefs.server.config.NbdExportSpec;
import io.bridgefs.server.posix.Inherited;
import io.bridgefs.server.config.P9ExportSpec;
import io.bridgefs.server.config.P9Security;
import io.bridgefs.server.posix.Capabilities;
import io.bridgefs.server.posix.Credentials;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * {@code serve --user NAME}: started as root, the server becomes NAME before it serves, keeping only
 * the capabilities its 9P exports' models need: passthrough the ones to act as each guest user
 * (CAP_SETUID, CAP_SETGID) and to act as guest root (the file capabilities); none and squash the file
 * capabilities of a server acting for everyone; mapped nothing at all. The root process first binds the
 * TCP listeners (a port below 1024 needs no capability afterwards) and opens the NBD images, whose
 * descriptors the new program inherits ({@link Inherited}); then it drops in the thread about to
 * re-execute the JVM (see {@link JvmSizing}): the new program starts as NAME with those capabilities
 * ambient, so every thread it ever has holds exactly them, and the root JVM is gone.
 */
final class UserDrop {
    static final String MARK = "-Dbridgefs.user.dropped=true";
    private static final long FILE_CAPS = Capabilities.bit(Capabilities.CHOWN) | Capabilities.bit(Capabilities.DAC_OVERRIDE)
            | Capabilities.bit(Capabilities.DAC_READ_SEARCH) | Capabilities.bit(Capabilities.FOWNER) | Capabilities.bit(Capabilities.FSETID);

    /** Who to become, what to keep, and the merged arguments (for the listeners and images to open first). */
    record Plan(String user, Credentials.Identity identity, long keep, List<String> argv) {}

    private UserDrop() {}

    /** The plan for {@code --user NAME} from the merged arguments; null without --user. */
    static Plan plan(List<String> argv) throws IOException {
        String user = JvmSizing.option(argv, "--user");
        if (user == null) return null;
        Credentials.Identity id = lookup(user);
        long keep = 0;
        for (String e : JvmSizing.options(argv, "--9p-export")) {
            P9ExportSpec spec;
            try {
                spec = P9ExportSpec.parse(e);
            } catch (IllegalArgumentException x) {
                continue;           // the command itself reports it
            }
            P9Security s = spec.securityFor(true);
            long need = switch (s) {
                case PASSTHROUGH -> FILE_CAPS | Capabilities.bit(Capabilities.SETUID) | Capabilities.bit(Capabilities.SETGID);
                case NONE -> FILE_CAPS;
                case SQUASH -> spec.squashUid() == id.uid() && contains(id.groups(), spec.squashGid()) ? 0 : FILE_CAPS;
                case MAPPED -> 0;
            };
            if (spec.devices() && s != P9Security.MAPPED) need |= Capabilities.bit(Capabilities.MKNOD);
            keep |= need;
        }
        return new Plan(user, id, keep, List.copyOf(argv));
    }

    /** NAME or a numeric uid, from the host's user database; its primary and supplementary groups. */
    static Credentials.Identity lookup(String user) throws IOException {
        for (String l : Files.readAllLines(Path.of("/etc/passwd"))) {
            String[] f = l.split(":");
            if (f.length > 3 && (f[0].equals(user) || f[2].equals(user))) {
                Credentials.Identity id = Credentials.identity(Integer.parseInt(f[2]));
                return new Credentials.Identity(id.uid(), Integer.parseInt(f[3]), withPrimary(id.groups(), Integer.parseInt(f[3])));
            }
        }
        throw new IOException("--user " + user + ": no such user in /etc/passwd");
    }

    private static int[] withPrimary(int[] groups, int gid) {
        if (contains(groups, gid)) return groups;
        int[] g = java.util.Arrays.copyOf(groups, groups.length + 1);
        g[groups.length] = gid;
        return g;
    }

    private static boolean contains(int[] a, int v) {
        for (int x : a) if (x == v) return true;
        return false;
    }

    /**
     * Whether the JVM must be re-executed for the plan (running as root, not yet dropped); throws if it
     * cannot be honoured: a non-root server can only be the user it already is.
     */
    static boolean needed(Plan p, List<String> jvmArgs) throws IOException {
        if (p == null || jvmArgs.contains(MARK)) return false;
        if (Credentials.SERVER_IS_ROOT) return true;
        if (Credentials.serverUid() == p.identity().uid()) return false;
        throw new IOException("--user " + p.user() + ": only root can switch users (this process is uid " + Credentials.serverUid() + ")");
    }

    /**
     * Binds the TCP listeners and opens the NBD images (as root), names the descriptors in the
     * environment of the program executed next, then becomes the plan's user (this thread) keeping its
     * capabilities for that program.
     */
    static void apply(Plan p) throws IOException {
        List<String> argv = p.argv();
        StringBuilder listen = new StringBuilder(), files = new StringBuilder();
        // the listeners the server will open: NBD and 9P where they have exports, metrics where asked for
        List<String> specs = new java.util.ArrayList<>();
        if (!JvmSizing.options(argv, "--nbd-export").isEmpty()) specs.add(orDefault(JvmSizing.option(argv, "--nbd-listen"), ServeCommand.DEFAULT_NBD_LISTEN));
        if (!JvmSizing.options(argv, "--9p-export").isEmpty()) specs.add(orDefault(JvmSizing.option(argv, "--9p-listen"), ServeCommand.DEFAULT_P9_LISTEN));
        String metrics = JvmSizing.option(argv, "--metrics-listen");
        if (metrics != null && !metrics.isBlank()) specs.add(metrics);
        for (String spec : specs) {
            ListenAddress a = ListenAddress.parse(spec);
            if (a.isUnix()) continue;                 // made by the server as the user
            int fd = Inherited.bindTcp((java.net.InetSocketAddress) a.toSocketAddress());
            listen.append(listen.length() == 0 ? "" : "\n").append(Inherited.listenEntry(a.toString(), fd));
        }
        for (String e : JvmSizing.options(argv, "--nbd-export")) {
            NbdExportSpec spec = NbdExportSpec.parse(e);
            Path path = spec.path().toAbsolutePath().normalize();
            if (!Files.isRegularFile(path)) continue;  // created (create=SIZE) or refused by the server
            int[] fds = Inherited.openFile(path, spec.readOnly());
            files.append(files.length() == 0 ? "" : "\n").append(Inherited.fileEntries(path, fds[0], fds[1]));
        }
        LIBC.setenv(Inherited.LISTEN_ENV, listen.toString(), 1);
        LIBC.setenv(Inherited.FILES_ENV, files.toString(), 1);
        Credentials.dropTo(p.identity(), p.keep());
    }

    private static String orDefault(String value, String fallback) {
        return value != null ? value : fallback;
    }

    private interface LibC extends com.sun.jna.Library {
        int setenv(String name, String value, int overwrite);
    }

    private static final LibC LIBC = com.sun.jna.Native.load("c", LibC.class);

    /** The start-up line saying who the server runs as. */
    static String describe() {
        long caps = Capabilities.permitted();
        return "running as uid " + Credentials.serverUid() + " gid " + Credentials.serverGid() + ", capabilities: " + Capabilities.names(caps);
    }
}
