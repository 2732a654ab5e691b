package io.bridgefs.server.config;

import java.net.InetAddress;
import java.net.UnknownHostException;

/** {@code ADDRESS[/BITS]}, IPv4 or IPv6: a range of peer addresses ({@code --allow}). */
public record Cidr(byte[] network, int bits) {

    public static Cidr parse(String s) {
        int slash = s.indexOf('/');
        String addr = slash < 0 ? s : s.substring(0, slash);
        byte[] a;
        try {
            if (!addr.matches("[0-9a-fA-F:.]+")) throw new UnknownHostException(addr);   // never a name lookup
            a = InetAddress.getByName(addr).getAddress();
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException("'" + s + "' is not an address or ADDRESS/BITS");
        }
        int bits = a.length * 8;
        if (slash >= 0) {
            try {
                bits = Integer.parseInt(s.substring(slash + 1));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("'" + s + "': the prefix length is not a number");
            }
            if (bits < 0 || bits > a.length * 8) throw new IllegalArgumentException("'" + s + "': prefix length out of range");
        }
        return new Cidr(a, bits);
    }

    /** {@code CIDR[:CIDR...]} of an export's {@code hosts=} (IPv6 ranges in brackets: {@code [fd00::]/8}). */
    public static java.util.List<Cidr> parseList(String s) {
        java.util.List<Cidr> out = new java.util.ArrayList<>();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\[([^\\]]*)\\](/\\d+)?|[^:\\[]+").matcher(s);
        while (m.find()) out.add(parse(m.group(1) != null ? m.group(1) + (m.group(2) == null ? "" : m.group(2)) : m.group()));
        if (out.isEmpty()) throw new IllegalArgumentException("hosts= needs at least one ADDRESS[/BITS]");
        return out;
    }

    /** Whether {@code peer} is in one of {@code ranges} (an empty list admits everyone). */
    public static boolean admits(java.util.List<Cidr> ranges, java.net.SocketAddress peer) {
        if (ranges.isEmpty()) return true;
        if (!(peer instanceof java.net.InetSocketAddress a) || a.getAddress() == null) return false;   // unix socket peers have no address
        for (Cidr c : ranges) if (c.contains(a.getAddress())) return true;
        return false;
    }

    public boolean contains(InetAddress peer) {
        byte[] p = peer.getAddress();
        if (p.length != network.length) {
            // an IPv4 peer reached over an IPv6 socket (::ffff:a.b.c.d)
            if (p.length == 16 && network.length == 4 && isMappedV4(p)) p = java.util.Arrays.copyOfRange(p, 12, 16);
            else return false;
        }
        int full = bits / 8, rest = bits % 8;
        for (int i = 0; i < full; i++) if (p[i] != network[i]) return false;
        if (rest == 0) return true;
        int mask = (0xFF << (8 - rest)) & 0xFF;
        return (p[full] & mask) == (network[full] & mask);
    }

    private static boolean isMappedV4(byte[] a) {
        for (int i = 0; i < 10; i++) if (a[i] != 0) return false;
        return a[10] == (byte) 0xFF && a[11] == (byte) 0xFF;
    }

    @Override
    public String toString() {
        try {
            return InetAddress.getByAddress(network).getHostAddress() + "/" + bits;
        } catch (UnknownHostException e) {
            return "?";
        }
    }
}
