package io.bridgefs.server.posix;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Native;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * Listening sockets and image files opened by the root process of {@code serve --user} before it
 * becomes the user, handed to the program it executes as descriptors named in its environment
 * ({@code BRIDGEFS_LISTEN_FDS}: listen address = descriptor; {@code BRIDGEFS_FILE_FDS}: absolute path =
 * buffered descriptor, O_DIRECT descriptor or -1). The user never needs the right to bind a low port
 * or to open a root-only image: it holds the descriptors, nothing more.
 */
public final class Inherited {
    public static final String LISTEN_ENV = "BRIDGEFS_LISTEN_FDS", FILES_ENV = "BRIDGEFS_FILE_FDS";
    private static final int AF_INET = 2, AF_INET6 = 10, SOCK_STREAM = 1, SOL_SOCKET = 1, SO_REUSEADDR = 2;
    private static final int F_SETFD = 2;

    private interface LibC extends Library {
        int socket(int domain, int type, int protocol) throws LastErrorException;
        int setsockopt(int fd, int level, int name, int[] value, int len) throws LastErrorException;
        int bind(int fd, byte[] addr, int len) throws LastErrorException;
        int listen(int fd, int backlog) throws LastErrorException;
        int fcntl(int fd, int cmd, int arg) throws LastErrorException;
    }

    private static final LibC LIBC = Native.load("c", LibC.class);
    private static final Map<String, Integer> LISTEN = parse(System.getenv(LISTEN_ENV));
    private static final Map<String, Integer> FILES = parse(System.getenv(FILES_ENV));

    private Inherited() {}

    private static Map<String, Integer> parse(String env) {
        Map<String, Integer> m = new HashMap<>();
        if (env == null || env.isEmpty()) return m;
        for (String e : env.split("\n")) {
            int eq = e.lastIndexOf('=');
            if (eq > 0) m.put(e.substring(0, eq), Integer.parseInt(e.substring(eq + 1)));
        }
        return m;
    }

    /** The inherited listening socket for the listen address spelled {@code spec}, or -1. */
    public static int listenFd(String spec) {
        return LISTEN.getOrDefault(spec, -1);
    }

    /** The inherited {buffered, O_DIRECT or -1} descriptors of the image at {@code path}, or null. */
    public static int[] fileFds(Path path) {
        Integer fd = FILES.get(path.toAbsolutePath().normalize().toString());
        if (fd == null) return null;
        Integer direct = FILES.get(path.toAbsolutePath().normalize() + "#direct");
        return new int[] {fd, direct == null ? -1 : direct};
    }

    /** One environment entry for a listening socket (see {@link #LISTEN_ENV}). */
    public static String listenEntry(String spec, int fd) {
        return spec + "=" + fd;
    }

    /** Environment entries for an image's descriptors (see {@link #FILES_ENV}). */
    public static String fileEntries(Path path, int fd, int direct) {
        String p = path.toAbsolutePath().normalize().toString();
        return p + "=" + fd + (direct >= 0 ? "\n" + p + "#direct=" + direct : "");
    }

    /** A TCP socket bound to {@code a} and listening, kept open across execve. */
    public static int bindTcp(InetSocketAddress a) throws IOException {
        boolean v4 = a.getAddress() instanceof Inet4Address;
        LibC c = LIBC;
        int fd = -1;
        try {
            fd = c.socket(v4 ? AF_INET : AF_INET6, SOCK_STREAM, 0);
            c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, new int[] {1}, 4);
            ByteBuffer b = ByteBuffer.allocate(v4 ? 16 : 28).order(ByteOrder.LITTLE_ENDIAN);
            b.putShort((short) (v4 ? AF_INET : AF_INET6));
            b.order(ByteOrder.BIG_ENDIAN).putShort((short) a.getPort());
            if (!v4) b.putInt(0);                                  // flow info
            b.put(a.getAddress().getAddress());
            c.bind(fd, b.array(), b.capacity());
            c.listen(fd, 4096);
            c.fcntl(fd, F_SETFD, 0);                               // no FD_CLOEXEC: it crosses the execve
            return fd;
        } catch (LastErrorException e) {
            if (fd >= 0) Posix.close(fd);
            throw new Posix.ErrnoException("listening on " + a, e.getErrorCode());
        }
    }

    /** The image opened buffered and (where the file system allows) O_DIRECT, kept open across execve. */
    public static int[] openFile(Path path, boolean readOnly) throws IOException {
        int mode = readOnly ? Posix.O_RDONLY : Posix.O_RDWR;
        int fd = Posix.open(path.toString(), mode);
        int direct = -1;
        try {
            direct = Posix.open(path.toString(), mode | Posix.O_DIRECT);
        } catch (IOException e) {
            // tmpfs and the like: no O_DIRECT
        }
        LibC c = LIBC;
        c.fcntl(fd, F_SETFD, 0);
        if (direct >= 0) c.fcntl(direct, F_SETFD, 0);
        return new int[] {fd, direct};
    }
}
