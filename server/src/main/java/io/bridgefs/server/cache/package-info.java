/**
 * The shared host page cache ({@link io.bridgefs.server.cache.PageCache}): one per server, read and
 * written by the NBD and the 9P paths alike.
 *
 * <h2>Identity</h2>
 * A page is keyed by (file, page index), where the file is a host (device, inode) pair given a small
 * integer id while the cache knows it (open, or closed with pages cached; a file forgotten and opened
 * again gets a new id, and the ghost remembers evicted pages by (device, inode)). The same host file
 * reached through NBD, 9P or a hard link is one {@link io.bridgefs.server.cache.CachedFile} and maps to
 * the same frames. Closed files kept for their pages are bounded in number (see
 * {@link io.bridgefs.server.cache.FileRegistry}).
 *
 * <h2>Memory</h2>
 * {@link io.bridgefs.server.cache.FrameMemory} holds a fixed number of 4 KiB frames off-heap, sized once. Per-frame metadata
 * (key, memory frame, state, pins, dirty flag and write generation, S3-FIFO frequency and queue, which
 * paths touched it) is packed into four longs an entry ({@link io.bridgefs.server.cache.FrameMeta}), so a
 * request's look at an entry costs one or two cache lines. The page table ({@link io.bridgefs.server.cache.PageTable}) and the
 * ghost ({@link io.bridgefs.server.cache.GhostSet}) are open-addressing tables of primitives: the hot path makes no per-page
 * heap objects beyond a short-lived buffer view.
 *
 * <h2>Concurrency</h2>
 * One lock guards all metadata, queues and counters; it is held for bookkeeping only, never across I/O
 * or while copying page data. A thread that wants a page takes the lock, looks it up and pins it (or
 * allocates a frame for it in state LOADING, pinned), drops the lock, then copies or does I/O. A frame
 * that is pinned is never evicted nor reassigned, so its contents and key are stable for the pinner.
 * Threads that find a LOADING frame wait on {@code changed} until the filler finishes, so each page
 * is read from backing storage once (a network thread's write declines instead, and the executor
 * writes it: {@link io.bridgefs.server.cache.PageWrites}). A thread never waits while it holds pins, which rules out
 * deadlock: reads and writes process one page (or one run of missing pages) at a time and unpin it
 * before moving on. Copies into the same page by concurrent requests are not atomic with respect to
 * each other, as on a disk.
 *
 * <h2>Dirty pages</h2>
 * A writer copies into the frame, then, under the lock, sets the dirty flag and bumps the frame's
 * write generation; only then is the write acknowledged. Write-back pins the dirty frames, notes their
 * generations, copies and writes them without the lock, and clears the dirty flag only where the
 * generation is unchanged: a write that raced with the write-back keeps its page dirty. Dirty frames
 * are never evicted; when every unpinned frame is dirty the allocating thread writes some back first.
 * A failed write-back leaves pages dirty, so data that was acknowledged is never dropped while a name
 * leads to the file; at the last close of a file with none left (removed, link count 0) nothing can
 * read it again, and its pages are dropped instead of written back ({@code CachedFile.close}).
 * {@link io.bridgefs.server.cache.WriteBack} writes a file's dirty pages in page order as runs of up to
 * {@code maxRun} pages, joining dirty pages at most 16 pages apart through the resident clean pages
 * between them: scattered small writes then cost a few large writes instead of one system call and
 * one disk request each. A gap is joined only if none of its pages is all zeros (it may be a hole,
 * which must stay one) and only while the host file's (size, mtime, ctime) are as the cache last saw
 * them (otherwise a clean page may no longer be what the file holds).
 *
 * <h2>How much may stay dirty</h2>
 * {@link io.bridgefs.server.cache.Flusher} starts writing back once {@code --dirty-background} (by
 * default {@code auto}: 25%, raised while the pages it writes are written again before they leave the
 * cache, see its notes) of the frames are dirty, 8 MiB at a time in page order until the share is below that again, and makes
 * writers wait above {@code --dirty-limit} (75%): the counterparts of
 * the kernel's {@code vm.dirty_background_ratio} and {@code vm.dirty_ratio}, but shares of a bounded
 * cache, where the kernel's are shares of all of the host's memory. The difference decides workloads
 * that rewrite a region larger than the background share but smaller than the host's: each page a
 * writer dirties is written back before the writer comes round to it again, so the disk sees about as
 * much as the client wrote, whatever order write-back takes (stopping at the threshold, as the flusher
 * does since session 17, wrote back 7-12% less in a sequential rewrite and 20-25% less under random
 * 4k writes than writing back every dirty page each time; the pass's dirty pages are listed and sorted
 * once, not per chunk, which had cost random writes a fifth of their rate). A server writing into the
 * kernel's page cache (nbdkit file, qemu-nbd) writes nothing during such a run on a host with memory
 * to spare.
 * Only a larger dirty share avoids the write-back, and it costs what the thresholds bound: a FLUSH must
 * write everything dirty (up to the limit's worth of the cache), and dirty frames cannot be evicted, so
 * readers have fewer clean ones. The defaults keep both small; an operator who wants a peer's
 * behaviour raises the thresholds or the cache size (the README's NBD bench shows both settings).
 * What the write-back costs the requests beside it is CPU: the flusher thread runs 10 nice levels
 * below the server ({@code --writeback-nice}), so on a busy host it takes what the network threads and clients leave
 * (on 2 cores a sequential rewrite ran 3.0-3.7 GB/s against 2.2-3.3 beside a flusher at the server's
 * priority); writers above the dirty limit wait, which leaves it the CPU, so it cannot fall behind for good.
 *
 * <h2>The network threads</h2>
 * Requests that need nothing that may wait are answered on the connection's event loop instead of
 * crossing to the I/O executor and back: a read whose pages are all resident
 * ({@code CachedFile.pinIfResident}, {@code readIfResident}), a write into pages that are all resident,
 * unshared and within the file while the dirty limit has room ({@code writeIfResident}), a write (NBD
 * or 9P) that takes new frames where no old content must be read ({@code writeIfNoWait}: whole pages,
 * or pages past the host file's end; whole by the write, not by the buffers a gathered write arrived
 * in), and a 9P {@code getattr} of a clean, current file. The reads and {@code writeIfResident} take the
 * lock once to check and pin, copy without it, and decline — having pinned, counted and changed
 * nothing — whenever any condition fails; {@code writeIfNoWait} may decline after writing some pages,
 * which the executor's write then writes again with the same bytes before the request is answered.
 *
 * <h2>Placement and eviction</h2>
 * While frames no page has had remain, a page takes the first at or after its file's start plus its
 * page number ({@link io.bridgefs.server.cache.FreeFrames}), so a file's pages are neighbours in
 * memory whatever order they were filled in. Then S3-FIFO chooses: new pages enter a small FIFO (10%
 * of frames); pages hit again while there move to the main FIFO, the rest are evicted early.
 * Main-queue pages with hits get another round (frequency 0..3). Evicted keys are remembered as
 * fingerprints in the ghost; a fill whose key is in the ghost is a refault and goes straight to main.
 * A one-pass sequential read therefore flows through the small queue without flushing the hot set in
 * main.
 *
 * <h2>Entries and memory frames; merging</h2>
 * The metadata above describes <em>entries</em> (one per resident key); the bytes live in a
 * <em>memory frame</em> {@code meta.mem(entry)}. Without merging the two are one to one. With
 * {@link io.bridgefs.server.cache.DedupMode#MERGE} there are twice as many entries as memory frames, and a fill whose bytes
 * equal a clean resident page (hash match, then byte compare) drops its own memory frame and maps its
 * entry onto that one (KSM's pages_shared / pages_sharing). A memory frame referenced by more than one
 * entry is never written in place: a writer first replaces its entry with a private copy
 * ({@code breakShare}, counted in {@code dedup_cow_breaks}), and zeroing a shared tail on truncate
 * drops the page instead, so no other key ever sees the change. An entry's memory frame ({@code meta.mem}) changes only
 * while the entry is LOADING and pinned by its filler, so a pinner can read it without the lock.
 *
 * <h2>Read-ahead</h2>
 * {@code O_DIRECT} backing I/O gets no read-ahead from the kernel, so a request that misses where one
 * of the file's recent read requests ended (the file keeps the last 32 ends) also allocates the file's
 * read-ahead window of pages past it, filled in the background
 * ({@link io.bridgefs.server.cache.Readahead}) — unless the page before is still being read for a
 * request: then the client did not wait for that reply and queues ahead itself. Residency alone is no
 * sign of a stream: random reads into a filling cache often start right after a resident page. Pages
 * read ahead carry frequency -1 until first read; one evicted at -1 was wasted, which halves the
 * window of its file.
 *
 * <h2>Batches of cold reads</h2>
 * {@link io.bridgefs.server.cache.ReadBatch} takes many requests' misses at once (an NBD connection's
 * small reads from one turn of its event loop): under the lock it pins each request's resident pages
 * and gives its absent ones LOADING frames, refusing, with nothing pinned, a request that meets a
 * page someone else is filling or that continues a stream; then one {@code io_submit} reads every run
 * and each run completes as a single fill does. It waits with its pins held, but only for the disk,
 * as a single fill waits with its LOADING frames.
 */
package io.bridgefs.server.cache;
