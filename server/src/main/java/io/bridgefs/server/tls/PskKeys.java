package io.bridgefs.server.tls;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;

/** A keys.psk file: one {@code username:hexkey} per line (psktool's format, read by qemu and nbdkit too). */
public final class PskKeys {
    private final Map<String, byte[]> keys;

    private PskKeys(Map<String, byte[]> keys) {
        this.keys = keys;
    }

    public static PskKeys read(Path file) throws IOException {
        Map<String, byte[]> keys = new HashMap<>();
        int n = 0;
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            n++;
            String l = line.strip();
            if (l.isEmpty() || l.startsWith("#")) continue;
            int c = l.lastIndexOf(':');
            if (c <= 0 || c == l.length() - 1) throw new IOException(file + ":" + n + ": expected username:hexkey");
            try {
                byte[] key = HexFormat.of().parseHex(l.substring(c + 1));
                if (key.length == 0) throw new IOException(file + ":" + n + ": empty key");
                keys.put(l.substring(0, c), key);
            } catch (IllegalArgumentException e) {
                throw new IOException(file + ":" + n + ": the key is not hexadecimal");
            }
        }
        if (keys.isEmpty()) throw new IOException(file + ": no keys");
        return new PskKeys(Map.copyOf(keys));
    }

    /** The key of {@code identity}, or null. */
    public byte[] key(String identity) {
        byte[] k = keys.get(identity);
        return k == null ? null : k.clone();
    }

    public int size() { return keys.size(); }
}
