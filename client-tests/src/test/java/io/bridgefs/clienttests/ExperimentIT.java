package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.clienttests.ReferenceExperiment.Run;
import io.bridgefs.clienttests.ReferenceExperiment.Together;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The reference experiment end to end on a small data set (the full run is client-tests/experiment/run.sh):
 * real guests on both paths, the host path, two guests at once with shadow and merge, figures and report.
 * Checks what the numbers must show whatever the machine's speed.
 */
class ExperimentIT {

    @Test
    void theReferenceExperimentRunsEndToEnd(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("results");
        // a small data set of few files keeps this under two minutes; the full run is client-tests/experiment/run.sh
        long size = 6L << 20;
        var r = ReferenceExperiment.run(new ReferenceExperiment.Options(size, Path.of("/usr/share"), out, dir.resolve("work"), 512, 512 << 10));
        assertTrue(r.datasetBytes() > size * 9 / 10, "data set of about 6 MiB: " + r.datasetBytes());

        assertEquals(5 * 6 * 2, r.runs().size(), "5 paths x 6 utilities x cold/warm");
        for (Run x : r.runs()) {
            assertTrue(x.elapsedSeconds() > 0, "elapsed time of " + x);
            assertEquals(0, x.errors(), "no utility printed an error: " + x);
            if (ExperimentReport.DATA_UTILITIES.contains(x.utility())) {
                assertTrue(x.rchar() >= r.datasetBytes() * 9 / 10, x.path() + " " + x.utility() + " read the whole data set: " + x);
            }
        }
        for (String path : List.of("HFS", "GFS", "GFS-bridged", "MyFS", "MyFS-loose")) {
            Run tar = ExperimentReport.find(r.runs(), path, "tar", "cold").orElseThrow();
            assertTrue(tar.rchar() >= r.datasetBytes() * 9 / 10, path + ": tar read the data set through its file system: " + tar);
        }
        Run gfsTar = ExperimentReport.find(r.runs(), "GFS", "tar", "cold").orElseThrow();
        Run myfsTar = ExperimentReport.find(r.runs(), "MyFS", "tar", "cold").orElseThrow();
        assertTrue(gfsTar.nbdReadBytes() >= r.datasetBytes() * 9 / 10 && gfsTar.p9ReadBytes() == 0, "GFS reads over NBD only: " + gfsTar);
        assertTrue(myfsTar.p9ReadBytes() >= r.datasetBytes() * 9 / 10 && myfsTar.nbdReadBytes() == 0, "MyFS reads over 9P only: " + myfsTar);
        assertTrue(gfsTar.nbdFillBytes() > 0, "cold: bridgefs read the image from disk: " + gfsTar);
        Run gfsWarm = ExperimentReport.find(r.runs(), "GFS", "tar", "warm").orElseThrow();
        assertTrue(gfsWarm.nbdFillBytes() < gfsTar.nbdFillBytes() / 4, "warm: served from the bridgefs cache: " + gfsWarm);
        assertTrue(gfsTar.guestCachedBytes() >= r.datasetBytes() / 2, "the block guest caches the data itself: " + gfsTar);
        assertTrue(myfsTar.guestCachedBytes() < r.datasetBytes() / 4, "the 9P guest (cache=none) does not: " + myfsTar);
        assertTrue(gfsTar.memoryBytes() > myfsTar.memoryBytes(), "the block path holds more memory");

        Together shadowGfs = pick(r.together(), "shadow", "GFS"), shadowMyfs = pick(r.together(), "shadow", "MyFS");
        Together mergeGfs = pick(r.together(), "merge", "GFS");
        long dup = shadowGfs.duplicateFillBytes() + shadowMyfs.duplicateFillBytes();
        assertTrue(dup >= r.datasetBytes() / 2, "the second reader of each page read data already resident: " + dup);
        assertTrue(mergeGfs.dedupSavedBytes() >= r.datasetBytes() / 2, "merge shares those pages: " + mergeGfs);
        assertTrue(mergeGfs.serverCachedBytes() < shadowGfs.serverCachedBytes(), "merge needs less memory: " + mergeGfs + " vs " + shadowGfs);

        for (String f : List.of("runs.csv", "together.csv", "report.md", "time.png", "memory.png", "together.png")) {
            assertTrue(Files.size(out.resolve(f)) > 200, f + " written");
        }
        for (String png : List.of("time.png", "memory.png", "together.png")) {
            byte[] head = java.util.Arrays.copyOf(Files.readAllBytes(out.resolve(png)), 8);
            assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}, head, png + " is a PNG");
        }
        assertEquals(61, Files.readAllLines(out.resolve("runs.csv")).size());

        // the bridged disk: a block guest whose data blocks are the files' own pages
        Run bridgedTar = ExperimentReport.find(r.runs(), "GFS-bridged", "tar", "cold").orElseThrow();
        assertTrue(bridgedTar.nbdReadBytes() >= r.datasetBytes() * 9 / 10 && bridgedTar.p9ReadBytes() == 0, "GFS-bridged reads over NBD: " + bridgedTar);
        Together bridgedGfs = pick(r.together(), "bridged", "GFS-bridged"), bridgedMyfs = pick(r.together(), "bridged", "MyFS");
        assertTrue(bridgedGfs.serverCachedBytes() < shadowGfs.serverCachedBytes() * 3 / 4,
                "one copy of the data on the bridged disk: " + bridgedGfs + " vs the mke2fs -d image's " + shadowGfs);
        long bridgedDup = bridgedGfs.duplicateFillBytes() + bridgedMyfs.duplicateFillBytes();
        assertTrue(bridgedDup <= r.datasetRepeatedBytes() + (64 << 10),
                "no duplicated fill on the bridged disk beyond the pages the data set repeats itself: " + bridgedDup + " vs " + r.datasetRepeatedBytes());
        assertTrue(bridgedDup * 4 < dup, "far fewer than with the mke2fs -d image: " + bridgedDup + " vs " + dup);
        assertTrue(bridgedGfs.crossHitsFromOther() + bridgedMyfs.crossHitsFromOther() > 0, "pages found by location: " + bridgedGfs + " " + bridgedMyfs);
        Run looseTar = ExperimentReport.find(r.runs(), "MyFS-loose", "tar", "cold").orElseThrow();
        assertTrue(looseTar.guestCachedBytes() >= r.datasetBytes() / 2, "with cache=loose the 9P guest caches the data: " + looseTar);
        String report = Files.readString(out.resolve("report.md"));
        assertTrue(report.contains("**1. With a warm host cache") && report.contains("**2. The block path needs about twice the memory"), report);
        assertTrue(report.contains("TCG"), "the report says the guests ran under TCG");
        assertTrue(report.contains("On the bridged disk the two guests' reads met in one copy"), report);
    }

    private static Together pick(List<Together> ts, String dedup, String path) {
        return ts.stream().filter(t -> t.dedup().equals(dedup) && t.path().equals(path)).findFirst()
                .orElseThrow(() -> new AssertionError("no two-guest result for " + dedup + " " + path + ": " + ts));
    }
}
