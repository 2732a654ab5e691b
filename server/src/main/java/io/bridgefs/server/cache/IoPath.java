package io.bridgefs.server.cache;

/** Which protocol path touched a page: the block path (NBD) or the file path (9P). */
public enum IoPath {
    NBD("nbd"), NINEP("9p");

    private final String label;

    IoPath(String label) { this.label = label; }

    /** The label used in metric names and stats: {@code nbd} or {@code 9p}. */
    public String label() { return label; }

    int bit() { return 1 << ordinal(); }
}
