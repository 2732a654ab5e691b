package io.bridgefs.server.bridged;

import static io.bridgefs.server.bridged.Ext4Image.BS;
import static io.bridgefs.server.bridged.Ext4Image.BPG;
import static io.bridgefs.server.bridged.Ext4Image.INODE_SIZE;
import static io.bridgefs.server.bridged.Ext4Image.IPB;
import static io.bridgefs.server.bridged.Ext4Image.PER_BLOCK;

import io.bridgefs.server.bridged.HostTree.Node;
import io.bridgefs.server.posix.Posix;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The bytes of every generated block of an {@link Ext4Image}, made on demand from the layout: the
 * superblock, group descriptors, bitmaps, inode tables, directory blocks, long symlink targets and
 * extent tree blocks. No checksummed features (metadata_csum, gdt_csum) are used, so nothing here
 * depends on anything but the layout. Field offsets follow the kernel's {@code struct ext4_super_block},
 * {@code ext4_group_desc}, {@code ext4_inode}, {@code ext4_dir_entry_2} and {@code ext4_extent*}.
 */
final class Ext4Blocks {
    static final int COMPAT_SPARSE_SUPER2 = 0x200;
    static final int INCOMPAT_FILETYPE = 0x2, INCOMPAT_EXTENTS = 0x40, INCOMPAT_FLEX_BG = 0x200;
    static final int RO_COMPAT_LARGE_FILE = 0x2, RO_COMPAT_HUGE_FILE = 0x8, RO_COMPAT_DIR_NLINK = 0x20, RO_COMPAT_EXTRA_ISIZE = 0x40;
    static final int EXTENTS_FL = 0x80000;
    static final int EXTRA_ISIZE = 32;
    private static final short EXTENT_MAGIC = (short) 0xF30A;

    private Ext4Blocks() {}

    /** Fills {@code out} (4096 bytes) with generated block {@code b}, which lies before the data area. */
    static void block(Ext4Image img, long b, byte[] out) {
        Arrays.fill(out, (byte) 0);
        ByteBuffer buf = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
        if (b == 0) superblock(img, buf);
        else if (b < img.bbStart) descriptors(img, (int) (b - 1), buf);
        else if (b < img.ibStart) bitmap(out, clamp(img.usedEnd - (b - img.bbStart) * BPG, BPG), clamp(img.blocks - (b - img.bbStart) * BPG, BPG));
        else if (b < img.itStart) bitmap(out, clamp(img.usedInodes - (b - img.ibStart) * img.ipg, img.ipg), img.ipg);
        else if (b < img.metaStart) inodeTable(img, b - img.itStart, buf);
        else if (b < img.dataStart) metadataArea(img, b, buf);
    }

    private static int clamp(long v, int max) {
        return (int) Math.max(0, Math.min(max, v));
    }

    /** Bits [0, used) set (in use), bits [valid, BS * 8) set (padding past the group's end), the rest clear. */
    private static void bitmap(byte[] out, int used, int valid) {
        setBits(out, 0, used);
        setBits(out, valid, BS * 8);
    }

    private static void setBits(byte[] out, int from, int to) {
        for (int i = from; i < to; ) {
            if ((i & 7) == 0 && to - i >= 8) {
                out[i >>> 3] = (byte) 0xFF;
                i += 8;
            } else {
                out[i >>> 3] |= (byte) (1 << (i & 7));
                i++;
            }
        }
    }

    private static void superblock(Ext4Image img, ByteBuffer b) {
        int s = 1024;
        long usedBlocks = img.usedEnd;
        b.putInt(s, img.ipg * img.groups);
        b.putInt(s + 0x04, (int) img.blocks);
        b.putInt(s + 0x0C, (int) (img.blocks - usedBlocks));
        b.putInt(s + 0x10, img.ipg * img.groups - img.usedInodes);
        b.putInt(s + 0x14, 0);                          // s_first_data_block (4 KiB blocks)
        b.putInt(s + 0x18, 2);                          // s_log_block_size: 1024 << 2
        b.putInt(s + 0x1C, 2);                          // s_log_cluster_size
        b.putInt(s + 0x20, BPG);
        b.putInt(s + 0x24, BPG);
        b.putInt(s + 0x28, img.ipg);
        b.putInt(s + 0x30, (int) img.now);              // s_wtime
        b.putShort(s + 0x36, (short) 0xFFFF);           // s_max_mnt_count: -1, no forced checks
        b.putShort(s + 0x38, (short) 0xEF53);
        b.putShort(s + 0x3A, (short) 1);                // s_state: cleanly unmounted
        b.putShort(s + 0x3C, (short) 1);                // s_errors: continue
        b.putInt(s + 0x40, (int) img.now);              // s_lastcheck
        b.putInt(s + 0x4C, 1);                          // s_rev_level: dynamic
        b.putInt(s + 0x54, Ext4Image.FIRST_INO);
        b.putShort(s + 0x58, (short) INODE_SIZE);
        b.putInt(s + 0x5C, COMPAT_SPARSE_SUPER2);       // no backup superblocks (s_backup_bgs stay 0)
        b.putInt(s + 0x60, INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_FLEX_BG);
        b.putInt(s + 0x64, RO_COMPAT_LARGE_FILE | RO_COMPAT_HUGE_FILE | RO_COMPAT_DIR_NLINK | RO_COMPAT_EXTRA_ISIZE);
        java.util.UUID u = java.util.UUID.nameUUIDFromBytes(("bridgefs:" + img.tree.dir).getBytes(StandardCharsets.UTF_8));
        b.putLong(s + 0x68, Long.reverseBytes(u.getMostSignificantBits()));
        b.putLong(s + 0x70, Long.reverseBytes(u.getLeastSignificantBits()));
        byte[] name = img.label.getBytes(StandardCharsets.UTF_8);
        b.put(s + 0x78, name, 0, Math.min(16, name.length));
        b.putInt(s + 0x108, (int) img.now);             // s_mkfs_time
        b.putShort(s + 0x15C, (short) EXTRA_ISIZE);     // s_min_extra_isize
        b.putShort(s + 0x15E, (short) EXTRA_ISIZE);     // s_want_extra_isize
        b.put(s + 0x174, (byte) 4);                     // s_log_groups_per_flex
    }

    private static void descriptors(Ext4Image img, int index, ByteBuffer b) {
        int first = index * (BS / 32);
        for (int g = first; g < Math.min(img.groups, first + BS / 32); g++) {
            int at = (g - first) * 32;
            long groupStart = (long) g * BPG;
            long groupEnd = Math.min(img.blocks, groupStart + BPG);
            long free = groupEnd - Math.max(groupStart, Math.min(groupEnd, img.usedEnd));
            int usedInodes = clamp(img.usedInodes - (long) g * img.ipg, img.ipg);
            b.putInt(at, (int) (img.bbStart + g));
            b.putInt(at + 4, (int) (img.ibStart + g));
            b.putInt(at + 8, (int) (img.itStart + (long) g * img.itb));
            b.putShort(at + 0x0C, (short) free);
            b.putShort(at + 0x0E, (short) (img.ipg - usedInodes));
            b.putShort(at + 0x10, (short) img.dirsInGroup[g]);
        }
    }

    private static void inodeTable(Ext4Image img, long tableBlock, ByteBuffer b) {
        long g = tableBlock / img.itb;
        long first = g * img.ipg + tableBlock % img.itb * IPB + 1;
        for (int i = 0; i < IPB; i++) {
            long ino = first + i;
            if (ino > img.usedInodes) break;
            Node n = img.byIno[(int) ino];
            if (n != null) inode(img, n, b, i * INODE_SIZE);
        }
    }

    static void inode(Ext4Image img, Node n, ByteBuffer b, int at) {
        int type = n.type();
        long sectors = 0;
        long size = n.size;
        int links = n.links;
        int flags = 0;
        if (n.isDir()) {
            size = (long) n.metaBlocks * BS;
            sectors = n.metaBlocks * 8L;
            if (links > 65000) links = 1;                  // dir_nlink: too many to count
        } else if (n.isRegular()) {
            sectors = (n.dataPages() + n.metaBlocks) * 8;
        } else if (n.isSymlink()) {
            size = n.target.length;
            sectors = n.metaBlocks * 8L;
        }
        b.putShort(at, (short) n.mode);
        b.putShort(at + 2, (short) n.uid);
        b.putInt(at + 4, (int) size);
        b.putInt(at + 8, (int) n.atime);
        b.putInt(at + 12, (int) n.ctime);
        b.putInt(at + 16, (int) n.mtime);
        b.putShort(at + 24, (short) n.gid);
        b.putShort(at + 26, (short) links);
        b.putInt(at + 28, (int) sectors);
        int iblock = at + 40;
        if (n.isDir() || n.isRegular() || (n.isSymlink() && n.metaBlocks > 0)) {
            flags |= EXTENTS_FL;
            extentRoot(img, n, b, iblock);
        } else if (n.isSymlink()) {
            b.put(iblock, n.target);
        } else if (type == Posix.S_IFCHR || type == Posix.S_IFBLK) {
            long major = ((n.rdev >>> 8) & 0xFFF) | ((n.rdev >>> 32) & ~0xFFFL);
            long minor = (n.rdev & 0xFF) | ((n.rdev >>> 12) & ~0xFFL);
            if (major < 256 && minor < 256) b.putInt(iblock, (int) (major << 8 | minor));
            else b.putInt(iblock + 4, (int) ((minor & 0xFF) | (major << 8) | ((minor & ~0xFFL) << 12)));
        }
        b.putInt(at + 32, flags);
        b.putInt(at + 108, (int) (size >>> 32));
        b.putShort(at + 116, (short) (sectors >>> 32));
        b.putShort(at + 120, (short) (n.uid >>> 16));
        b.putShort(at + 122, (short) (n.gid >>> 16));
        b.putShort(at + 128, (short) EXTRA_ISIZE);
        b.putInt(at + 132, extra(n.ctime, n.ctimeNs));
        b.putInt(at + 136, extra(n.mtime, n.mtimeNs));
        b.putInt(at + 140, extra(n.atime, n.atimeNs));
    }

    /** The *_extra field of a time: nanoseconds above two bits of epoch (seconds beyond the signed 32-bit range). */
    private static int extra(long sec, long nsec) {
        long epoch = ((sec - (int) sec) >> 32) & 3;
        return (int) ((nsec << 2) | epoch);
    }

    private static void header(ByteBuffer b, int at, int entries, int max, int depth) {
        b.putShort(at, EXTENT_MAGIC);
        b.putShort(at + 2, (short) entries);
        b.putShort(at + 4, (short) max);
        b.putShort(at + 6, (short) depth);
    }

    /**
     * The extent tree's root in the inode's i_block: the extents themselves when there are at most four,
     * else index entries for the top level of tree blocks. Tree blocks lie in the node's metadata-area
     * blocks, the leaves first, then each index level above them.
     */
    private static void extentRoot(Ext4Image img, Node n, ByteBuffer b, int at) {
        long[] ext = img.extents(n);
        int count = ext.length / 3;
        int depth = Ext4Image.treeDepth(count);
        if (depth == 0) {
            header(b, at, count, 4, 0);
            for (int i = 0; i < count; i++) leaf(b, at + 12 + 12 * i, ext, i);
            return;
        }
        long[] levelStart = levelStarts(n, count, depth);
        long span = span(depth - 1);
        int top = (int) Ext4Image.ceilDiv(count, span);
        header(b, at, top, 4, depth);
        for (int i = 0; i < top; i++) index(b, at + 12 + 12 * i, ext[(int) (3 * i * span)], levelStart[depth - 1] + i);
    }

    /** Extents covered by one tree block at {@code level} (0: leaves). */
    private static long span(int level) {
        long s = PER_BLOCK;
        for (int i = 0; i < level; i++) s *= PER_BLOCK;
        return s;
    }

    /** The first block of each tree level (leaves at 0). */
    private static long[] levelStarts(Node n, int count, int depth) {
        long[] starts = new long[depth];
        long at = n.metaBlock;
        long level = count;
        for (int d = 0; d < depth; d++) {
            starts[d] = at;
            level = Ext4Image.ceilDiv(level, PER_BLOCK);
            at += level;
        }
        return starts;
    }

    private static void leaf(ByteBuffer b, int at, long[] ext, int i) {
        b.putInt(at, (int) ext[3 * i]);
        b.putShort(at + 4, (short) ext[3 * i + 1]);
        b.putShort(at + 6, (short) (ext[3 * i + 2] >>> 32));
        b.putInt(at + 8, (int) ext[3 * i + 2]);
    }

    private static void index(ByteBuffer b, int at, long firstLogical, long child) {
        b.putInt(at, (int) firstLogical);
        b.putInt(at + 4, (int) child);
        b.putShort(at + 8, (short) (child >>> 32));
    }

    /** A block of the metadata area: a directory block, a long symlink's target, or an extent tree block. */
    private static void metadataArea(Ext4Image img, long block, ByteBuffer b) {
        Node n = img.metaNode(block);
        int k = (int) (block - n.metaBlock);
        if (n.isDir()) directoryBlock(n, k, b);
        else if (n.isSymlink()) b.put(0, n.target);
        else treeBlock(img, n, k, b);
    }

    private static void treeBlock(Ext4Image img, Node n, int k, ByteBuffer b) {
        long[] ext = img.extents(n);
        int count = ext.length / 3;
        int depth = Ext4Image.treeDepth(count);
        long[] starts = levelStarts(n, count, depth);
        int level = depth - 1;
        while (n.metaBlock + k < starts[level]) level--;
        long j = n.metaBlock + k - starts[level];             // the j-th block of its level
        if (level == 0) {
            int from = (int) (j * PER_BLOCK);
            int to = Math.min(count, from + PER_BLOCK);
            header(b, 0, to - from, PER_BLOCK, 0);
            for (int i = from; i < to; i++) leaf(b, 12 + 12 * (i - from), ext, i);
            return;
        }
        long childSpan = span(level - 1);
        long children = Ext4Image.ceilDiv(count, childSpan);
        long from = j * PER_BLOCK;
        long to = Math.min(children, from + PER_BLOCK);
        header(b, 0, (int) (to - from), PER_BLOCK, level);
        for (long c = from; c < to; c++) index(b, (int) (12 + 12 * (c - from)), ext[(int) (3 * c * childSpan)], starts[level - 1] + c);
    }

    private static void directoryBlock(Node d, int k, ByteBuffer b) {
        int from = d.dirBlockStart[k];
        int to = k + 1 < d.dirBlockStart.length ? d.dirBlockStart[k + 1] : d.entries.size() + 2;
        int pos = 0;
        for (int i = from; i < to; i++) {
            byte[] name;
            Node target;
            if (i == 0) {
                name = new byte[] {'.'};
                target = d;
            } else if (i == 1) {
                name = new byte[] {'.', '.'};
                target = d.parent;
            } else {
                name = d.entries.get(i - 2).name();
                target = d.entries.get(i - 2).node();
            }
            int len = i == to - 1 ? BS - pos : Ext4Image.direntSize(name.length);
            b.putInt(pos, target.imageIno);
            b.putShort(pos + 4, (short) len);
            b.put(pos + 6, (byte) name.length);
            b.put(pos + 7, (byte) fileType(target));
            b.put(pos + 8, name);
            pos += len;
        }
    }

    static int fileType(Node n) {
        return switch (n.type()) {
            case Posix.S_IFREG -> 1;
            case Posix.S_IFDIR -> 2;
            case Posix.S_IFCHR -> 3;
            case Posix.S_IFBLK -> 4;
            case Posix.S_IFIFO -> 5;
            case Posix.S_IFSOCK -> 6;
            case Posix.S_IFLNK -> 7;
            default -> 0;
        };
    }
}
