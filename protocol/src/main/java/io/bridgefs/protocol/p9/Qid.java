package io.bridgefs.protocol.p9;

/** A 9P qid: type[1] version[4] path[8]. {@code path} identifies the file (bridgefs: the host inode). */
public record Qid(int type, int version, long path) {
    public static final int QTDIR = 0x80;
    public static final int QTAPPEND = 0x40;
    public static final int QTEXCL = 0x20;
    public static final int QTAUTH = 0x08;
    public static final int QTSYMLINK = 0x02;
    public static final int QTFILE = 0x00;
    public static final int SIZE = 13;
}
