package io.bridgefs.server.cache;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;

/**
 * The files a {@link PageCache} knows (guarded by the cache lock): one {@link CachedFile} per host
 * (device, inode), with a small id that keys its pages while the cache knows the file. As in the
 * kernel's page cache, a file's clean pages outlive its last close; a closed file is forgotten when its
 * last page goes, and one opened again while it still has pages keeps them only if the host file is
 * unchanged. Unlike the kernel's, the number of closed files kept is bounded: each costs heap (see
 * {@link MetadataHeap#closedFiles}), and a cache of one-page files could otherwise hold one per page.
 * Past the bound, the pages of the file closed longest ago are evicted, and it is forgotten.
 */
final class FileRegistry {
    private final PageCache cache;
    private final Map<FileKey, CachedFile> files = new HashMap<>();     // open files, and closed ones with cached pages
    private final Map<Integer, CachedFile> byId = new HashMap<>();
    private final LinkedHashSet<CachedFile> closedOrder = new LinkedHashSet<>();   // closed with pages, longest closed first
    private final int closedLimit;
    private int nextId = 1;

    FileRegistry(PageCache cache, int closedLimit) {
        this.cache = cache;
        this.closedLimit = closedLimit;
    }

    /** With the lock held: closed files kept for their cached pages. */
    int closedCount() {
        return closedOrder.size();
    }

    /** Opens (or shares) the cached file for a host path. */
    CachedFile open(Path path, boolean readOnly) throws IOException {
        FileKey key = FileKey.of(path);
        cache.lock.lock();
        try {
            CachedFile f = files.get(key);
            if (f != null && !f.closed) {
                if (!readOnly && f.readOnly) throw new AccessDeniedException(path.toString(), null, "already open read-only");
                f.refs++;
                return f;
            }
        } finally {
            cache.lock.unlock();
        }
        return register(key, FileBackingStore.open(path, readOnly), readOnly);
    }

    /** The cached file of a host file if one is open (one more reference, to close), else null. */
    /** With the cache lock held: the file of this key, open or closed, or null. */
    CachedFile byKeyLocked(FileKey key) {
        return files.get(key);
    }

    CachedFile openIfPresent(FileKey key) {
        cache.lock.lock();
        try {
            CachedFile f = files.get(key);
            if (f == null || f.closed) return null;
            f.refs++;
            return f;
        } finally {
            cache.lock.unlock();
        }
    }

    /** Takes {@code store} over: it is kept by the file, or closed (also when this fails before keeping it). */
    CachedFile register(FileKey key, BackingStore store, boolean readOnly) throws IOException {
        long size;
        try {
            size = store.size();
        } catch (IOException | RuntimeException e) {
            store.close();
            throw e;
        }
        CachedFile reopened = null;
        cache.lock.lock();
        try {
            CachedFile existing = files.get(key);
            if (existing != null && existing.closed) {
                closedOrder.remove(existing);
                existing.reopen(store, readOnly);
                reopened = existing;
            } else if (existing != null) {
                existing.refs++;
                store.close();
                return existing;
            } else {
                int id = newId();
                CachedFile f = new CachedFile(cache, id, key, store, size, readOnly);
                files.put(key, f);
                byId.put(id, f);
                return f;
            }
        } finally {
            cache.lock.unlock();
        }
        try {
            reopened.revalidate();     // changed on the host while it was closed? then its pages go
        } catch (IOException e) {
            reopened.close();
            throw e;
        }
        return reopened;
    }

    /**
     * A fresh id: never one a known file holds. A forgotten file's id may still key a late fill of its
     * (dropped on completion, see {@link PageCache#completeFill}); ids are reused only after 2^31 files.
     */
    private int newId() {
        while (true) {
            int id = nextId;
            nextId = id == Integer.MAX_VALUE ? 1 : id + 1;
            if (!byId.containsKey(id)) return id;
        }
    }

    /** With the lock held: the file's last reference is gone and its descriptor about to be closed. */
    void closed(CachedFile f) {
        f.closed = true;
        f.reads.forgetStreams();
        f.streamEnds = null;                 // and its write streams: a closed file kept for its pages is written no more
        if (f.resident == 0) {
            forget(f);
            return;
        }
        closedOrder.add(f);
        while (closedOrder.size() > closedLimit) {
            CachedFile oldest = closedOrder.iterator().next();
            cache.queues.evictFile(oldest);        // its last page going forgets it
            closedOrder.remove(oldest);           // (not kept in order if a page was not found)
        }
    }

    /** With the lock held: a closed file's pages are read (without opening it): it is kept longer. */
    void used(CachedFile f) {
        if (closedOrder.remove(f)) closedOrder.add(f);
    }

    private void forget(CachedFile f) {
        files.remove(f.key);
        byId.remove(f.id);
        closedOrder.remove(f);
    }

    /** A page of a file became VALID (+1) or stopped being VALID (-1); a closed file without pages is forgotten. */
    void residentChanged(int fileId, int delta) {
        CachedFile cf = byId.get(fileId);
        if (cf == null) return;
        cf.resident += delta;
        if (cf.resident == 0 && cf.closed) forget(cf);
    }

    /** With the lock held: files with a descriptor (closed files with cached pages have none). */
    List<CachedFile> openLocked() {
        List<CachedFile> out = new ArrayList<>();
        for (CachedFile f : files.values()) if (!f.closed) out.add(f);
        return out;
    }

    /** With the lock held: the file of an id, or null once forgotten. */
    CachedFile byId(int id) {
        return byId.get(id);
    }

    /** With the lock held: every known file, open or closed with cached pages. */
    java.util.Collection<CachedFile> all() {
        return files.values();
    }
}
