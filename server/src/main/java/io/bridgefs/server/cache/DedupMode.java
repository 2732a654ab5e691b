package io.bridgefs.server.cache;

import java.util.Locale;

/**
 * Fill-time content sharing ({@code --dedup}). {@link #SHADOW} hashes every filled page and counts
 * fills whose bytes are already resident under another key; {@link #MERGE} also maps such keys onto
 * the one frame that holds the bytes (copy-on-write); {@link #OFF} does neither.
 */
public enum DedupMode {
    OFF, SHADOW, MERGE;

    public static DedupMode parse(String s) {
        for (DedupMode m : values()) {
            if (m.name().equalsIgnoreCase(s.trim())) return m;
        }
        throw new IllegalArgumentException("unknown --dedup mode '" + s + "' (off, shadow, merge)");
    }

    public String label() { return name().toLowerCase(Locale.ROOT); }
}
