package io.bridgefs.server.config;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.file.Path;

/**
 * {@code HOST:PORT}, {@code [V6]:PORT}, {@code :PORT} (loopback) or {@code unix:PATH[,mode=OCTAL][,group=NAME]}
 * (the socket file's permissions and group, for a QEMU running as another user).
 */
public record ListenAddress(String host, int port, Path unixPath, Integer unixMode, String unixGroup) {

    public ListenAddress(String host, int port, Path unixPath) {
        this(host, port, unixPath, null, null);
    }

    public static ListenAddress parse(String s) {
        if (s.startsWith("unix:")) {
            String[] parts = s.substring(5).split(",");
            String p = parts[0];
            if (p.isEmpty()) throw new IllegalArgumentException("'" + s + "': unix: needs a socket path");
            Integer mode = null;
            String group = null;
            for (int i = 1; i < parts.length; i++) {
                if (parts[i].startsWith("mode=")) {
                    try {
                        mode = Integer.parseInt(parts[i].substring(5), 8);
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("'" + s + "': mode= takes octal permissions, like 0660");
                    }
                    if (mode < 0 || mode > 0777) throw new IllegalArgumentException("'" + s + "': mode= out of range");
                } else if (parts[i].startsWith("group=") && parts[i].length() > 6) {
                    group = parts[i].substring(6);
                } else {
                    throw new IllegalArgumentException("'" + s + "': unknown unix socket option '" + parts[i] + "' (mode=, group=)");
                }
            }
            return new ListenAddress(null, 0, Path.of(p), mode, group);
        }
        int colon = s.lastIndexOf(':');
        if (colon < 0) throw new IllegalArgumentException("'" + s + "' is not HOST:PORT or unix:PATH");
        String host = s.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) host = host.substring(1, host.length() - 1);
        if (host.isEmpty()) host = "127.0.0.1";
        int port;
        try {
            port = Integer.parseInt(s.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + s + "': port is not a number");
        }
        if (port < 0 || port > 65535) throw new IllegalArgumentException("'" + s + "': port out of range");
        return new ListenAddress(host, port, null);
    }

    public boolean isUnix() { return unixPath != null; }

    public SocketAddress toSocketAddress() {
        if (isUnix()) return new io.netty.channel.unix.DomainSocketAddress(unixPath.toString());
        return new InetSocketAddress(host, port);
    }

    @Override
    public String toString() {
        if (isUnix()) return "unix:" + unixPath;
        return host.contains(":") ? "[" + host + "]:" + port : host + ":" + port;
    }
}
