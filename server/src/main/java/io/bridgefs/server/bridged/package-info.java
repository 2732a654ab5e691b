/**
 * The bridged disk: a host directory served over NBD as a read-only ext4 image whose data blocks are
 * the host files' own pages in the shared cache ({@code --nbd-export NAME=DIR,bridged}).
 *
 * <h2>Why</h2>
 * A guest on an ordinary image names its data by offsets in the image, so its pages can be shared with
 * the 9P path only by comparing content after a duplicate read ({@code --dedup}). bridgefs builds this
 * image itself, so it knows that image block B is page P of host file F, and reads B as F's page P:
 * the same (device, inode, page) key, and frame, the 9P path and any image export of F use.
 *
 * <h2>Image layout</h2>
 * 4 KiB blocks, 32768 blocks per group, 256-byte inodes; features filetype, extents, flex_bg,
 * sparse_super2 (no backup superblocks), large_file, huge_file, dir_nlink, extra_isize; no journal and
 * no checksummed metadata (so a block's bytes depend on the layout alone). In block order:
 * <ol>
 * <li>block 0: the superblock (at byte 1024); then the group descriptors;</li>
 * <li>every group's block bitmap, then every group's inode bitmap, then every group's inode table
 *     (flex_bg lets them all sit at the front);</li>
 * <li>the metadata area, in inode order: each directory's blocks (linear {@code ext4_dir_entry_2}
 *     blocks, entries sorted by name), each long symlink's target block (targets under 60 bytes live
 *     in the inode), each large file's extent tree blocks (leaves first, then each index level);</li>
 * <li>the data area: every regular file's data runs, back to back, in inode order. A sparse file's
 *     holes take no blocks (its extents skip them);</li>
 * <li>free space, with room to spare, reported as a hole by NBD block status (as are inode table
 *     blocks holding no inode).</li>
 * </ol>
 * Inode numbers: 2 is the root, 11 is lost+found (made when the tree has none), the tree's entries
 * follow in reading order: depth-first, each directory's entries by name, the order in which tar, cp
 * -r or grep -r meet them, so their data reads go through the data area from start to end; hard links
 * share one inode. Owners (32-bit), modes, times with nanoseconds,
 * device numbers and link counts are the host's.
 *
 * <h2>From a block to a file page</h2>
 * Blocks before the data area are generated when read ({@link io.bridgefs.server.bridged.Ext4Blocks}),
 * never cached. A block in the data area is found by a binary search over the files' first data blocks,
 * then a walk of that file's runs (in pages): block {@code dataBlock(F) + k} is the k-th data page of
 * F. It is read through the shared cache under F's key ({@link io.bridgefs.server.bridged.BridgedDisk});
 * nothing is stored per data block, so memory grows with the number of entries, never with the data.
 *
 * <h2>Reading ahead across files</h2>
 * Each file's pages are read ahead by the cache like any file's, but a guest reading a tree file by
 * file (tar, cp, grep -r) asks for each small file once, and no per-file read-ahead reaches the next
 * file. The data area lies in reading order (above), so that reader's requests follow one another
 * through the image: a read continuing such a run (three reads long, each starting where one of the last four
 * ended), with no other read in flight, reads the next window of the image's data blocks (the next
 * files' pages) on the cache's read-ahead pool, the window growing along the run from the export's
 * initial read-ahead to its largest. Such pages count as read-ahead, and as unused if evicted unread.
 *
 * <h2>Snapshot and live</h2>
 * The tree's shape is a snapshot taken when the export opens (names, types, owners, modes, times,
 * sizes, where each file's data lies). File contents are live: a read of a data block reads the host
 * file's page now. A file that grew is served up to its recorded size; one that shrank reads as zeros
 * past its current end; a path now leading to another inode (replaced, or turned into a symlink) reads
 * as zeros. {@code POST /exports/NAME/rescan} on the metrics listener takes a new snapshot; it is
 * refused (409) while a client is connected, and then runs when the last one disconnects. The walk uses
 * the 9P path's rules: names are resolved below the export root one component at a time with
 * O_NOFOLLOW, symlinks are recorded and never followed, and only directories and regular files are
 * opened (device files, FIFOs and sockets are only stat'ed). Names that are not valid UTF-8 are left
 * out (logged). A host entry named lost+found that is not a directory makes e2fsck complain.
 */
package io.bridgefs.server.bridged;
