package io.bridgefs.server.cli;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The configuration file: one {@code setting = value} per line, where a setting is the long name of
 * a {@code serve} option without its dashes ({@code nbd-export = disk=demo/disk.img}). {@code #}
 * starts a comment. Repeatable options may repeat. The file becomes command-line arguments placed
 * before the real ones; an option given on the command line replaces the file's values for it.
 */
public final class ConfigFile {
    private ConfigFile() {}

    /** A setting from the file, kept with its line number for error messages. */
    public record Entry(String key, String value, int line) {}

    public static List<Entry> parse(String text, String source) {
        List<Entry> out = new ArrayList<>();
        String[] lines = text.split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].strip();
            if (line.isEmpty() || line.startsWith("#")) continue;
            int eq = line.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException(source + ":" + (i + 1) + ": expected 'setting = value', got '" + line + "'");
            out.add(new Entry(line.substring(0, eq).strip(), line.substring(eq + 1).strip(), i + 1));
        }
        return out;
    }

    public static List<Entry> read(Path file) throws IOException {
        return parse(Files.readString(file, StandardCharsets.UTF_8), file.toString());
    }

    public static List<Entry> embeddedDefault() throws IOException {
        try (InputStream in = ConfigFile.class.getResourceAsStream("/io/bridgefs/server/bridgefs.conf")) {
            if (in == null) throw new IOException("the embedded default configuration is missing from the jar");
            return parse(new String(in.readAllBytes(), StandardCharsets.UTF_8), "embedded bridgefs.conf");
        }
    }

    /** Merges file entries in front of command-line arguments, skipping options the command line sets. */
    public static List<String> merge(List<Entry> entries, List<String> commandLine, Set<String> knownOptions) {
        Set<String> given = new LinkedHashSet<>();
        for (String a : commandLine) {
            if (a.startsWith("--")) given.add(a.contains("=") ? a.substring(0, a.indexOf('=')) : a);
        }
        List<String> out = new ArrayList<>();
        for (Entry e : entries) {
            String opt = "--" + e.key();
            if (!knownOptions.contains(opt) || opt.equals("--config")) {
                throw new IllegalArgumentException("configuration line " + e.line() + ": unknown setting '" + e.key() + "'");
            }
            if (given.contains(opt)) continue;
            out.add(opt + "=" + e.value());
        }
        out.addAll(commandLine);
        return out;
    }
}
