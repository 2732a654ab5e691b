package io.bridgefs.clienttests;

import static io.bridgefs.clienttests.ReferenceExperiment.GFS;
import static io.bridgefs.clienttests.ReferenceExperiment.MYFS;
import static io.bridgefs.clienttests.ReferenceExperiment.MYFS_LOOSE;
import static io.bridgefs.clienttests.ReferenceExperiment.human;

import io.bridgefs.clienttests.ReferenceExperiment.Results;
import io.bridgefs.clienttests.ReferenceExperiment.Run;
import io.bridgefs.clienttests.ReferenceExperiment.Together;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Locale;
import java.util.Optional;

/** The markdown report of the reference experiment: tables, figures, and a verdict on each claim, with its numbers. */
final class ExperimentReport {
    /** Utilities that read file data (find and du read only metadata). */
    static final List<String> DATA_UTILITIES = List.of("grep", "tar", "md5sum", "cp");

    private ExperimentReport() {}

    /** Verdict on claim 1: GFS/MyFS elapsed-time ratios with a warm host cache. */
    record SpeedClaim(Map<String, Double> ratios, double geomean, int myfsFaster, String verdict) {}

    /** Verdict on claim 2: GFS/MyFS memory ratios after the cold data-reading runs. */
    record MemoryClaim(Map<String, Double> ratios, double geomean, String verdict) {}

    static Optional<Run> find(List<Run> runs, String path, String utility, String phase) {
        return runs.stream().filter(r -> r.path().equals(path) && r.utility().equals(utility) && r.phase().equals(phase)).findFirst();
    }

    static SpeedClaim speedClaim(List<Run> runs) {
        return speedClaim(runs, MYFS);
    }

    static SpeedClaim speedClaim(List<Run> runs, String hostBased) {
        Map<String, Double> ratios = new LinkedHashMap<>();
        int faster = 0;
        for (String u : ReferenceExperiment.UTILITIES) {
            Optional<Run> g = find(runs, GFS, u, "warm"), m = find(runs, hostBased, u, "warm");
            if (g.isEmpty() || m.isEmpty()) continue;
            double r = g.get().elapsedSeconds() / Math.max(0.01, m.get().elapsedSeconds());
            ratios.put(u, r);
            if (r > 1) faster++;
        }
        double gm = geomean(ratios.values());
        String verdict = gm >= 1.5 && faster >= ratios.size() - 1 ? "holds"
                : gm > 1.05 ? "holds only in part (MyFS is faster, but not by much)"
                : "does not hold here";
        return new SpeedClaim(ratios, gm, faster, verdict);
    }

    static MemoryClaim memoryClaim(List<Run> runs) {
        return memoryClaim(runs, MYFS);
    }

    static MemoryClaim memoryClaim(List<Run> runs, String hostBased) {
        Map<String, Double> ratios = new LinkedHashMap<>();
        for (String u : DATA_UTILITIES) {
            Optional<Run> g = find(runs, GFS, u, "cold"), m = find(runs, hostBased, u, "cold");
            if (g.isEmpty() || m.isEmpty() || m.get().memoryBytes() <= 0) continue;
            ratios.put(u, (double) g.get().memoryBytes() / m.get().memoryBytes());
        }
        double gm = geomean(ratios.values());
        String verdict = gm >= 1.6 && gm <= 2.6 ? "holds"
                : gm > 2.6 ? "holds, and the block path needs even more than twice"
                : gm > 1.2 ? "holds only in part (more memory, but well under twice)"
                : "does not hold here";
        return new MemoryClaim(ratios, gm, verdict);
    }

    static double geomean(java.util.Collection<Double> xs) {
        if (xs.isEmpty()) return 0;
        double s = 0;
        for (double x : xs) s += Math.log(Math.max(1e-9, x));
        return Math.exp(s / xs.size());
    }

    static String render(Results r, ReferenceExperiment.Options o, String command) throws Exception {
        StringBuilder b = new StringBuilder();
        b.append("# bridgefs reference experiment: results\n\n");
        b.append("Made by `").append(command).append("` on ").append(java.time.LocalDate.now()).append(".\n\n");
        b.append("- Machine: ").append(Runtime.getRuntime().availableProcessors()).append(" cores, host kernel ")
                .append(sh("uname -r")).append(", ").append(sh("qemu-system-x86_64 --version | head -n1")).append(".\n");
        b.append("- Guests: Debian's generic kernel ").append(guestKernel()).append(" with a busybox initramfs, ")
                .append(o.guestMemMiB()).append(" MiB, one vCPU, **QEMU TCG** (software emulation: `-accel kvm` hangs on these machines).\n");
        b.append("- Data set: ").append(r.datasetFiles()).append(" files, ").append(human(r.datasetBytes())).append(", copied from `")
                .append(o.source()).append("`. GFS reads an ext4 image of it (`mke2fs -d`) over NBD; MyFS mounts the directory over 9P (`cache=none`); ")
                .append("MyFS-loose mounts it with `cache=loose`, so the guest caches 9P data too (beyond the paper).\n");
        b.append("- Utilities: busybox `find`, `du -s`, `grep -r`, `tar -c` of everything (busybox tar reads every file even into /dev/null), `md5sum` of every file, `cp -r` into tmpfs, ")
                .append("the same binary on the host (HFS) and in the guests.\n");
        b.append("- **Cold**: the host kernel's caches and the bridgefs cache dropped before the run; **warm**: the same run again right after. ")
                .append("The guest's own page cache is dropped before every run, so cold and warm differ only in the host cache.\n\n");
        b.append("Under TCG the guest CPU is emulated, several times slower than the host's: compare the paths with each other, ")
                .append("not the absolute times, and expect CPU-heavy utilities (md5sum, grep) to be limited by the guest CPU on every path.\n\n");

        b.append("![elapsed time per utility and path](time.png)\n\n![memory per path](memory.png)\n\n![two guests at once](together.png)\n\n");

        SpeedClaim speed = speedClaim(r.runs());
        MemoryClaim mem = memoryClaim(r.runs());
        b.append("## The two claims\n\n");
        b.append("**1. With a warm host cache, the host-based path is much faster than the block path: ").append(speed.verdict()).append(".** ");
        b.append(String.format(Locale.ROOT, "GFS/MyFS elapsed time, warm: %s (geometric mean %.2f; MyFS faster in %d of %d utilities).",
                ratios(speed.ratios()), speed.geomean(), speed.myfsFaster(), speed.ratios().size()));
        b.append(" Cold, for comparison: ").append(ratios(coldRatios(r.runs()))).append(".");
        Optional<Run> gt = find(r.runs(), GFS, "tar", "warm"), mt = find(r.runs(), MYFS, "tar", "warm");
        if (gt.isPresent() && mt.isPresent() && mt.get().p9Requests() > 0 && gt.get().nbdRequests() > 0
                && mt.get().elapsedSeconds() > gt.get().elapsedSeconds()) {
            b.append(String.format(Locale.ROOT, " Where the time goes, for tar (warm): MyFS sent %d 9P requests for %d files (%.1f per file), "
                            + "%.2f ms of elapsed time each; GFS sent %d NBD requests, %.2f ms each, because the guest's ext4 reads its "
                            + "metadata and data in large blocks and resolves names locally. Every 9P request crosses the emulated guest's "
                            + "TCP stack and QEMU's user-mode network, which under TCG costs far more than the host cache saves.",
                    mt.get().p9Requests(), r.datasetFiles(), (double) mt.get().p9Requests() / Math.max(1, r.datasetFiles()),
                    mt.get().elapsedSeconds() * 1000 / mt.get().p9Requests(), gt.get().nbdRequests(),
                    gt.get().elapsedSeconds() * 1000 / gt.get().nbdRequests()));
        }
        b.append("\n\n");
        b.append("**2. The block path needs about twice the memory: ").append(mem.verdict()).append(".** ");
        b.append(String.format(Locale.ROOT, "GFS/MyFS memory (host cache + guest cache) after the cold %s runs: %s (geometric mean %.2f).",
                String.join(", ", DATA_UTILITIES), ratios(mem.ratios()), mem.geomean()));
        b.append(" The block guest keeps its own page cache of the data on top of the host's copy of the image; the 9P guest with ")
                .append("`cache=none` keeps none and reads the host's one copy.\n\n");
        SpeedClaim looseSpeed = speedClaim(r.runs(), MYFS_LOOSE);
        MemoryClaim looseMem = memoryClaim(r.runs(), MYFS_LOOSE);
        b.append(String.format(Locale.ROOT, "With the 9P guest caching too (`cache=loose`, MyFS-loose): GFS/MyFS-loose elapsed time, warm, "
                        + "geometric mean %.2f (%s); memory ratio, geometric mean %.2f (%s).\n\n",
                looseSpeed.geomean(), ratios(looseSpeed.ratios()), looseMem.geomean(), ratios(looseMem.ratios())));

        long failed = r.runs().stream().filter(x -> x.errors() > 0).count();
        b.append(failed == 0 ? "Every utility ran without an error message on every path.\n\n"
                : "**" + failed + " runs printed errors** (column `errors` of `runs.csv`, first lines in the consoles as `UTILITY-ERROR`): "
                        + "their numbers do not cover the whole data set.\n\n");
        b.append("## Elapsed time (seconds)\n\n| utility |");
        for (String phase : ReferenceExperiment.PHASES) for (String p : ReferenceExperiment.PATHS) b.append(' ').append(p).append(' ').append(phase).append(" |");
        b.append("\n|---|").append("---:|".repeat(ReferenceExperiment.PATHS.size() * 2)).append('\n');
        for (String u : ReferenceExperiment.UTILITIES) {
            b.append("| ").append(u);
            for (String phase : ReferenceExperiment.PHASES) {
                for (String p : ReferenceExperiment.PATHS) {
                    b.append(" | ").append(find(r.runs(), p, u, phase).map(x -> String.format(Locale.ROOT, "%.2f", x.elapsedSeconds())).orElse("-"));
                }
            }
            b.append(" |\n");
        }
        b.append("\n## Memory after each cold run\n\nHost cache: the host kernel's page cache of the data set (HFS, `fincore`) or the bridgefs cache (GFS, MyFS). ")
                .append("Guest cache: growth of `Cached` + `Buffers` in the guest's `/proc/meminfo` over the run.\n\n")
                .append("| utility | path | host cache | guest cache | total | vs MyFS |\n|---|---|---:|---:|---:|---:|\n");
        for (String u : ReferenceExperiment.UTILITIES) {
            Optional<Run> m = find(r.runs(), MYFS, u, "cold");
            for (String p : ReferenceExperiment.PATHS) {
                Optional<Run> x = find(r.runs(), p, u, "cold");
                if (x.isEmpty()) continue;
                Run y = x.get();
                b.append("| ").append(u).append(" | ").append(p).append(" | ").append(human(y.hostCacheBytes()))
                        .append(" | ").append(human(y.guestCachedBytes() + y.guestBuffersBytes())).append(" | ").append(human(y.memoryBytes()))
                        .append(" | ").append(m.isPresent() && m.get().memoryBytes() > 0
                                ? String.format(Locale.ROOT, "%.2f", (double) y.memoryBytes() / m.get().memoryBytes()) : "-")
                        .append(" |\n");
            }
        }

        b.append("\n## Round trips\n\nRequests each guest sent to bridgefs during the cold run, and the elapsed time per request ")
                .append("(an upper bound on the round-trip time: the guest also computes between requests).\n\n")
                .append("| utility | GFS NBD requests | ms per request | MyFS 9P requests | ms per request | MyFS-loose 9P requests | ms per request |\n")
                .append("|---|---:|---:|---:|---:|---:|---:|\n");
        for (String u : ReferenceExperiment.UTILITIES) {
            Optional<Run> g = find(r.runs(), GFS, u, "cold"), m = find(r.runs(), MYFS, u, "cold"), l = find(r.runs(), MYFS_LOOSE, u, "cold");
            b.append("| ").append(u).append(" | ").append(g.map(x -> Long.toString(x.nbdRequests())).orElse("-"))
                    .append(" | ").append(g.map(x -> perRequest(x.elapsedSeconds(), x.nbdRequests())).orElse("-"));
            for (Optional<Run> x9 : List.of(m, l)) {
                b.append(" | ").append(x9.map(x -> Long.toString(x.p9Requests())).orElse("-"))
                        .append(" | ").append(x9.map(x -> perRequest(x.elapsedSeconds(), x.p9Requests())).orElse("-"));
            }
            b.append(" |\n");
        }
        b.append("\n## Beyond the paper: two guests at once\n\n");
        b.append("A GFS guest and a MyFS guest run `tar` over the whole data set at the same time, on one fresh bridgefs: first with ")
                .append("`--dedup shadow` (duplicated reads are counted, nothing is shared), then with `--dedup merge` (pages whose bytes are ")
                .append("already resident are mapped onto the same frame). The third run (\"bridged\") puts the block guest on the bridged disk ")
                .append("of the data set directory (`--nbd-export gfsb=DIR,bridged`), counted with `--dedup shadow`: its data blocks are the files' ")
                .append("own pages, found by location.\n\n");
        b.append("| run | guest | elapsed (s) | read by the guest | filled from disk | duplicated fills | server cache | resident pages | saved by merging | hits on the other path's pages |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (Together t : r.together()) {
            b.append("| ").append(t.dedup()).append(" | ").append(t.path()).append(String.format(Locale.ROOT, " | %.2f | ", t.elapsedSeconds()))
                    .append(human(t.readBytes())).append(" | ").append(human(t.fillBytes())).append(" | ").append(human(t.duplicateFillBytes()))
                    .append(" | ").append(human(t.serverCachedBytes())).append(" | ").append(human(t.residentBytes()))
                    .append(" | ").append(human(t.dedupSavedBytes())).append(" | ").append(t.crossHitsFromOther()).append(" |\n");
        }
        b.append('\n').append(togetherSummary(r)).append('\n');
        String bridged = bridgedSummary(r);
        if (!bridged.isEmpty()) b.append('\n').append(bridged).append('\n');

        b.append("\n## Bytes moved per run\n\n`rchar`: bytes the utility read through its file system; NBD/9P: bytes the guest read from bridgefs; ")
                .append("fills: bytes bridgefs read from its disk.\n\n| path | utility | phase | rchar | NBD reads | 9P reads | fills |\n|---|---|---|---:|---:|---:|---:|\n");
        for (Run x : r.runs()) {
            b.append("| ").append(x.path()).append(" | ").append(x.utility()).append(" | ").append(x.phase()).append(" | ").append(human(x.rchar()))
                    .append(" | ").append(human(x.nbdReadBytes())).append(" | ").append(human(x.p9ReadBytes()))
                    .append(" | ").append(human(x.nbdFillBytes() + x.p9FillBytes())).append(" |\n");
        }
        b.append("\nRaw numbers: `runs.csv`, `together.csv`; guest consoles: `console-*.log`.\n");
        return b.toString();
    }

    static String togetherSummary(Results r) {
        Optional<Together> sg = pick(r, "shadow", GFS), sm = pick(r, "shadow", MYFS), mg = pick(r, "merge", GFS);
        if (sg.isEmpty() || sm.isEmpty() || mg.isEmpty()) return "";
        long dup = sg.get().duplicateFillBytes() + sm.get().duplicateFillBytes();
        long shadowCache = sg.get().serverCachedBytes(), mergeCache = mg.get().serverCachedBytes();
        return String.format(Locale.ROOT, "With shadow counting, %s of what bridgefs read from disk (GFS %s, MyFS %s) was already in memory "
                        + "under the other path's key: the block guest names its pages by offsets in an image, not by files, so the same bytes "
                        + "are read and cached once per path, and whichever guest comes second reads them again. With merge the server held "
                        + "the same resident pages in %s instead of %s (%s saved, %.0f%% less).",
                human(dup), human(sg.get().duplicateFillBytes()), human(sm.get().duplicateFillBytes()), human(mergeCache), human(shadowCache),
                human(mg.get().dedupSavedBytes()), shadowCache > 0 ? 100.0 * (shadowCache - mergeCache) / shadowCache : 0.0);
    }

    /** The bridged two-guest run against the shadow run with the mke2fs -d image. */
    static String bridgedSummary(Results r) {
        Optional<Together> bg = pick(r, "bridged", ReferenceExperiment.GFS_BRIDGED), bm = pick(r, "bridged", MYFS), sg = pick(r, "shadow", GFS);
        if (bg.isEmpty() || bm.isEmpty() || sg.isEmpty()) return "";
        return String.format(Locale.ROOT, "On the bridged disk the two guests' reads met in one copy: the server cache held %s (against %s with the "
                        + "mke2fs -d image), %s of the fills duplicated a resident page (against %s; the data set itself repeats %s of its pages "
                        + "in other files, which any reader fills twice), and each path hit pages the other had read "
                        + "(%d NBD hits on 9P-read pages, %d 9P hits on NBD-read pages) - shared by where the block lies in the image, with no hashing.",
                human(bg.get().serverCachedBytes()), human(sg.get().serverCachedBytes()),
                human(bg.get().duplicateFillBytes() + bm.get().duplicateFillBytes()),
                human(sg.get().duplicateFillBytes() + pick(r, "shadow", MYFS).map(Together::duplicateFillBytes).orElse(0L)),
                human(r.datasetRepeatedBytes()), bg.get().crossHitsFromOther(), bm.get().crossHitsFromOther());
    }

    private static Optional<Together> pick(Results r, String dedup, String path) {
        return r.together().stream().filter(t -> t.dedup().equals(dedup) && t.path().equals(path)).findFirst();
    }

    private static String perRequest(double seconds, long requests) {
        return requests <= 0 ? "-" : String.format(Locale.ROOT, "%.2f", seconds * 1000 / requests);
    }

    private static Map<String, Double> coldRatios(List<Run> runs) {
        Map<String, Double> out = new LinkedHashMap<>();
        for (String u : ReferenceExperiment.UTILITIES) {
            Optional<Run> g = find(runs, GFS, u, "cold"), m = find(runs, MYFS, u, "cold");
            if (g.isPresent() && m.isPresent()) out.put(u, g.get().elapsedSeconds() / Math.max(0.01, m.get().elapsedSeconds()));
        }
        return out;
    }

    private static String ratios(Map<String, Double> xs) {
        List<String> s = new ArrayList<>();
        xs.forEach((u, v) -> s.add(String.format(Locale.ROOT, "%s %.2f", u, v)));
        return String.join(", ", s);
    }

    private static String guestKernel() {
        try (var s = Files.list(GuestVm.guestDir().resolve("lib/modules"))) {
            return s.map(p -> p.getFileName().toString()).findFirst().orElse("?");
        } catch (Exception e) {
            return "?";
        }
    }

    private static String sh(String cmd) {
        try {
            return Tools.run(java.time.Duration.ofSeconds(20), "sh", "-c", cmd).out().trim();
        } catch (Exception e) {
            return "?";
        }
    }
}
