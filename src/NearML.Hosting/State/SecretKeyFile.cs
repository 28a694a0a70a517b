using NearML.Ledger;

namespace NearML.Hosting.State;

/// <summary>Writes a new NEAR ed25519 secret key file (<c>ed25519:&lt;base58&gt;</c>) atomically, readable by its owner only.</summary>
internal static class SecretKeyFile
{
    /// <summary>Generates a key and writes it to <paramref name="path"/> through <c>path.tmp</c> (mode 0600 off Windows, flushed, then renamed).</summary>
    /// <param name="path">The key file (must not exist).</param>
    /// <returns>The new key (the caller disposes it).</returns>
    /// <exception cref="IOException">The file cannot be written (the temporary file is removed).</exception>
    /// <exception cref="UnauthorizedAccessException">The folder is not writable.</exception>
    public static NearKeyPair CreateNew(string path)
    {
        var key = NearKeyPair.Generate();
        var temp = path + CheckpointStore.TemporarySuffix;
        try
        {
            using (var fs = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                }

                fs.Write(System.Text.Encoding.ASCII.GetBytes(key.ExportSecretKey()));
                fs.Flush(flushToDisk: true);
            }

            File.Move(temp, path);
            return key;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            key.Dispose();
            try
            {
                File.Delete(temp);
            }
            catch (IOException)
            {
            }

            throw;
        }
    }
}
