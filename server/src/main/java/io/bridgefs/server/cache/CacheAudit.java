package io.bridgefs.server.cache;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Recounts a {@link PageCache}'s bookkeeping from the frames' metadata: residency, dirty, pinned and
 * sharing counters, every resident key found in the page table (and by the neighbour shortcut), no dirty page on a shared frame, each
 * file's resident count, the merge free list. The model-based tests call it after every step.
 */
final class CacheAudit {
    private CacheAudit() {}

    /** With the cache lock held: what disagrees (empty when all is well). */
    static List<String> verify(PageCache c) {
        List<String> bad = new ArrayList<>();
        int valid = 0, dirty = 0, pinned = 0, shared = 0;
        int[] refs = new int[c.memFrames], valids = new int[c.memFrames];
        for (int f = 0; f < c.frames; f++) {
            if (c.meta.pins(f) > 0) pinned++;
            if (c.meta.state(f) == PageCache.FREE) continue;
            refs[c.meta.mem(f)]++;
            if (c.meta.state(f) != PageCache.VALID) continue;
            valid++;
            valids[c.meta.mem(f)]++;
            if (c.meta.touched(f) == 3) shared++;
            if (c.meta.dirty(f)) dirty++;
            if (c.table.get(c.meta.file(f), c.meta.page(f)) != f) bad.add("entry " + f + " is not found under its key");
            // the neighbour shortcut answers as the table does, for the next page and for this one
            long next = c.meta.page(f) + 1;
            if (c.table.getAfter(c.meta.file(f), next, f) != c.table.get(c.meta.file(f), next)) bad.add("the entry after " + f + " differs from the table's");
            if (f > 0 && c.table.getAfter(c.meta.file(f), c.meta.page(f), f - 1) != f) bad.add("entry " + f + " is not found after frame " + (f - 1));
        }
        int resident = 0, pShared = 0, pSharing = 0;
        for (int m = 0; m < c.memFrames; m++) {
            if (valids[m] > 0) resident++;
            if (valids[m] > 1) {
                pShared++;
                pSharing += valids[m] - 1;
            }
            if (valids[m] != c.mem.valid[m]) bad.add("frame " + m + ": " + valids[m] + " valid entries, counted " + c.mem.valid[m]);
            if (c.merge && refs[m] != c.mem.refs[m]) bad.add("frame " + m + ": " + refs[m] + " entries, counted " + c.mem.refs[m]);
        }
        for (int f = 0; f < c.frames; f++) {
            if (c.meta.state(f) == PageCache.VALID && c.meta.dirty(f) && refs[c.meta.mem(f)] > 1) bad.add("dirty entry " + f + " is on a shared frame");
        }
        Map<Integer, Integer> perFile = new HashMap<>();
        for (int f = 0; f < c.frames; f++) if (c.meta.state(f) == PageCache.VALID) perFile.merge(c.meta.file(f), 1, Integer::sum);
        for (CachedFile cf : c.registry.all()) {
            int n = perFile.getOrDefault(cf.id, 0);
            if (n != cf.resident) bad.add("file " + cf.key + ": " + n + " resident pages, counted " + cf.resident);
            if (cf.closed && (cf.dirtyPages > 0 || n == 0)) bad.add("closed file " + cf.key + " kept with " + n + " pages, " + cf.dirtyPages + " dirty");
        }
        for (int id : perFile.keySet()) if (c.registry.byId(id) == null) bad.add("resident pages of forgotten file id " + id);
        int unused = 0;
        for (int m = 0; m < c.memFrames; m++) if (refs[m] == 0 && (!c.merge || c.mem.holds[m] == 0)) unused++;
        if (c.merge && unused != c.mem.top) bad.add(unused + " c.frames unused, " + c.mem.top + " on the free list");
        check(bad, "resident pages", valid, c.validPages);
        check(bad, "dirty pages", dirty, c.dirtyPages);
        check(bad, "pinned pages", pinned, c.pinnedPages);
        check(bad, "shared pages", shared, c.sharedPages);
        check(bad, "resident c.frames", resident, c.mem.residentFrames);
        if (c.merge) {
            check(bad, "pages shared", pShared, c.mem.pagesShared);
            check(bad, "pages sharing", pSharing, c.mem.pagesSharing);
        }
        return bad;
    }

    private static void check(List<String> bad, String what, long recounted, long counted) {
        if (recounted != counted) bad.add(what + ": recounted " + recounted + ", counted " + counted);
    }
}
