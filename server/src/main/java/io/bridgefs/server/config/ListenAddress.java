package io.bridgefs.server.config;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.file.Path;

/** {@code HOST:PORT}, {@code [V6]:PORT}, {@code :PORT} (loopback) or {@code unix:PATH}. */
public record ListenAddress(String host, int port, Path unixPath) {

    public static ListenAddress parse(String s) {
        if (s.startsWith("unix:")) {
            String p = s.substring(5);
            if (p.isEmpty()) throw new IllegalArgumentException("'" + s + "': unix: needs a socket path");
            return new ListenAddress(null, 0, Path.of(p));
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
