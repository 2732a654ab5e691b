package io.bridgefs.server.bridged;

import io.bridgefs.server.bridged.HostTree.Dirent;
import io.bridgefs.server.bridged.HostTree.Node;
import io.bridgefs.server.posix.Posix;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The layout of an ext4 file system holding a {@link HostTree}: which image block is what. All
 * metadata comes first (superblock, descriptors, bitmaps and inode tables of every group, as flex_bg
 * allows; then directory blocks, long symlink targets and extent tree blocks), then the data of every
 * regular file, each file's data runs back to back in inode order, then free space. So a data block
 * maps to (file, page) by a binary search over the files' first blocks and a walk of that file's runs;
 * nothing is stored per data block. See the package documentation.
 */
public final class Ext4Image {
    static final int BS = 4096;
    static final int BPG = 8 * BS;                  // blocks per group: one bitmap block
    static final int INODE_SIZE = 256;
    static final int IPB = BS / INODE_SIZE;
    static final int FIRST_INO = 11;
    static final int MAX_EXTENT = 32768;            // blocks in one initialized extent
    static final int PER_BLOCK = (BS - 12) / 12;    // extent entries in a tree block
    static final long MAX_BLOCKS = (1L << 32) - 1;  // without the 64bit feature

    final HostTree tree;
    final long now;
    final String label;
    final Node[] byIno;               // by inode number; null for the reserved ones
    final int usedInodes;             // inodes 1..usedInodes are in use
    final int groups, ipg, itb, gdtBlocks;
    final long blocks;
    final long bbStart, ibStart, itStart, metaStart, dataStart, usedEnd;
    final int[] dirsInGroup;
    private final Node[] metaOf;      // nodes with blocks in the metadata area, by metaBlock
    private final long[] metaAt;
    private final Node[] dataOf;      // regular files with data, by dataBlock
    private final long[] dataAt;

    /** Lays out the tree; refuses one that would need more than 2^32 blocks (16 TiB) or inodes. */
    public static Ext4Image of(HostTree tree, String label) throws IOException {
        return new Ext4Image(tree, label, System.currentTimeMillis() / 1000);
    }

    Ext4Image(HostTree tree, String label, long now) throws IOException {
        this.tree = tree;
        this.label = label;
        this.now = now;
        addLostAndFound(tree, now);
        usedInodes = FIRST_INO - 1 + tree.nodes.size();
        byIno = new Node[usedInodes + 1];
        byIno[2] = tree.root;
        tree.root.imageIno = 2;
        int ino = FIRST_INO;
        for (Node n : tree.nodes) {
            n.imageIno = ino;
            byIno[ino++] = n;
        }
        // sizes of the metadata and data areas, which do not depend on where the groups end
        long meta = 0, data = 0;
        List<Node> metaNodes = new ArrayList<>(), dataNodes = new ArrayList<>();
        for (int i = 2; i <= usedInodes; i++) {
            Node n = byIno[i];
            if (n == null) continue;
            n.metaBlocks = n.isDir() ? packDirectory(n) : n.isSymlink() && n.target.length >= 60 ? 1 : n.isRegular() ? treeBlocks(extentCount(n)) : 0;
            if (n.metaBlocks > 0) {
                n.metaBlock = meta;
                meta += n.metaBlocks;
                metaNodes.add(n);
            }
            if (n.isRegular() && n.dataPages() > 0) {
                n.dataBlock = data;
                data += n.dataPages();
                dataNodes.add(n);
            }
        }
        // groups, inodes per group and blocks, until they agree; with room to spare in both
        long inodesWanted = usedInodes + Math.max(usedInodes / 10, 256);
        int g = 1;
        while (true) {
            int perGroup = (int) Math.min(BPG, roundUp(ceilDiv(inodesWanted, g), IPB));
            if ((long) perGroup * g < inodesWanted) {
                g++;
                continue;
            }
            int tableBlocks = perGroup / IPB;
            int descBlocks = (int) ceilDiv(32L * g, BS);
            long used = 1 + descBlocks + 2L * g + (long) g * tableBlocks + meta + data;
            long total = used + Math.max(used / 20, 1024);
            long need = ceilDiv(total, BPG);
            if (need > g) {
                g = (int) need;
                continue;
            }
            if (total - (long) (g - 1) * BPG < 1024) total = (long) (g - 1) * BPG + 1024;   // no tiny last group
            if (total > MAX_BLOCKS || (long) perGroup * g > 0xFFFF_FFFFL) {
                throw new IOException("bridged image of " + tree.dir + " would need " + total + " blocks of 4 KiB: over the 16 TiB an ext4 image without 64bit holds");
            }
            groups = g;
            ipg = perGroup;
            itb = tableBlocks;
            gdtBlocks = descBlocks;
            blocks = total;
            break;
        }
        bbStart = 1 + gdtBlocks;
        ibStart = bbStart + groups;
        itStart = ibStart + groups;
        metaStart = itStart + (long) groups * itb;
        dataStart = metaStart + meta;
        usedEnd = dataStart + data;
        metaOf = metaNodes.toArray(Node[]::new);
        metaAt = new long[metaOf.length];
        for (int i = 0; i < metaOf.length; i++) metaAt[i] = metaOf[i].metaBlock += metaStart;
        dataOf = dataNodes.toArray(Node[]::new);
        dataAt = new long[dataOf.length];
        for (int i = 0; i < dataOf.length; i++) dataAt[i] = dataOf[i].dataBlock += dataStart;
        dirsInGroup = new int[groups];
        for (int i = 2; i <= usedInodes; i++) if (byIno[i] != null && byIno[i].isDir()) dirsInGroup[(i - 1) / ipg]++;
    }

    public long size() { return blocks * BS; }

    public HostTree tree() { return tree; }

    /** A tree without a lost+found directory gets one (inode 11), as mke2fs makes, so e2fsck finds it. */
    private static void addLostAndFound(HostTree tree, long now) {
        byte[] lf = "lost+found".getBytes(StandardCharsets.US_ASCII);
        for (Dirent e : tree.root.entries) if (Arrays.equals(e.name(), lf)) return;
        Node n = new Node(Posix.S_IFDIR | 0700, now);
        n.parent = tree.root;
        n.links = 2;
        tree.nodes.add(0, n);
        tree.root.entries.add(new Dirent(lf, n));
        tree.root.entries.sort((a, b) -> Arrays.compareUnsigned(a.name(), b.name()));
        tree.root.links++;
    }

    /** Splits a directory's entries into blocks; returns the block count. */
    private static int packDirectory(Node d) {
        int n = d.entries.size() + 2;
        int[] starts = new int[8];
        int blocksUsed = 1;
        int pos = 0;
        for (int i = 0; i < n; i++) {
            int len = direntSize(i < 2 ? i + 1 : d.entries.get(i - 2).name().length);
            if (pos + len > BS) {
                if (blocksUsed == starts.length) starts = Arrays.copyOf(starts, blocksUsed * 2);
                starts[blocksUsed++] = i;
                pos = 0;
            }
            pos += len;
        }
        d.dirBlockStart = Arrays.copyOf(starts, blocksUsed);
        return blocksUsed;
    }

    static int direntSize(int nameLength) {
        return (8 + nameLength + 3) & ~3;
    }

    /** The (logical block, length, physical block) extents of a node's data: at most 32768 blocks each. */
    long[] extents(Node n) {
        long[] runs = n.isRegular() ? n.runs : new long[] {0, n.metaBlocks};
        long phys = n.isRegular() ? n.dataBlock : n.metaBlock;
        long[] out = new long[3 * extentCount(runs)];
        int k = 0;
        for (int i = 0; i < runs.length; i += 2) {
            for (long done = 0; done < runs[i + 1]; ) {
                long len = Math.min(MAX_EXTENT, runs[i + 1] - done);
                out[k++] = runs[i] + done;
                out[k++] = len;
                out[k++] = phys;
                phys += len;
                done += len;
            }
        }
        return out;
    }

    static int extentCount(Node n) {
        return extentCount(n.runs);
    }

    private static int extentCount(long[] runs) {
        long c = 0;
        for (int i = 1; i < runs.length; i += 2) c += ceilDiv(runs[i], MAX_EXTENT);
        return (int) c;
    }

    /** Blocks of the extent tree for {@code extents} extents (0 when the inode's four entries hold them). */
    static int treeBlocks(int extents) {
        int total = 0;
        for (long level = extents; level > 4; ) {
            level = ceilDiv(level, PER_BLOCK);
            total += (int) level;
        }
        return total;
    }

    /** The number of tree levels below the inode (the root's eh_depth). */
    static int treeDepth(int extents) {
        int depth = 0;
        for (long level = extents; level > 4; level = ceilDiv(level, PER_BLOCK)) depth++;
        return depth;
    }

    // ---- what a block is ----

    /** The node whose metadata-area blocks hold {@code block}, which lies in that area. */
    Node metaNode(long block) {
        int i = Arrays.binarySearch(metaAt, block);
        return metaOf[i >= 0 ? i : -i - 2];
    }

    /** Where a block of the data area is: the file and the file page, or null if it is free space. */
    FilePage filePage(long block) {
        if (block < dataStart || block >= usedEnd) return null;
        int i = Arrays.binarySearch(dataAt, block);
        Node n = dataOf[i >= 0 ? i : -i - 2];
        long off = block - n.dataBlock;
        for (int r = 0; r < n.runs.length; r += 2) {
            if (off < n.runs[r + 1]) return new FilePage(n, n.runs[r] + off, n.runs[r + 1] - off);
            off -= n.runs[r + 1];
        }
        throw new IllegalStateException("block " + block + " beyond the data of " + n.path());
    }

    /** A data block: page {@code page} of {@code node}, followed by {@code run - 1} more of its pages in order. */
    record FilePage(Node node, long page, long run) {}

    /** Whether a block of the fixed metadata is an inode table block holding no used inode (reads as zeros). */
    boolean emptyTableBlock(long block) {
        if (block < itStart || block >= metaStart) return false;
        long g = (block - itStart) / itb;
        long first = g * ipg + (block - itStart) % itb * IPB + 1;
        return first > usedInodes;
    }

    static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    private static long roundUp(long a, long m) {
        return ceilDiv(a, m) * m;
    }
}
