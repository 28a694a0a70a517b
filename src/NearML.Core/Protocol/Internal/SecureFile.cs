namespace NearML.Core.Protocol.Internal;

/// <summary>Creates secret files: owner read/write only on Unix, written to a temporary file and moved into place.</summary>
internal static class SecureFile
{
    public static void WriteNew(string path, ReadOnlySpan<byte> contents)
    {
        if (File.Exists(path))
        {
            throw new IOException($"{path} already exists; refusing to overwrite a key file.");
        }

        var temp = path + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using (var stream = new FileStream(temp, options))
            {
                stream.Write(contents);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: false);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }
}
