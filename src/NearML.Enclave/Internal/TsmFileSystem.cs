namespace NearML.Enclave.Internal;

/// <summary>The few file operations configfs-tsm needs; a seam so tests can emulate the kernel's side.</summary>
internal interface ITsmFileSystem
{
    bool DirectoryExists(string path);

    bool FileExists(string path);

    void CreateDirectory(string path);

    void DeleteDirectory(string path);

    string ReadAllText(string path);

    Task<string> ReadAllTextAsync(string path, CancellationToken ct);

    Task<byte[]> ReadAllBytesAsync(string path, CancellationToken ct);

    Task WriteAllBytesAsync(string path, ReadOnlyMemory<byte> data, CancellationToken ct);
}

internal sealed class RealTsmFileSystem : ITsmFileSystem
{
    public bool DirectoryExists(string path) => Directory.Exists(path);

    public bool FileExists(string path) => File.Exists(path);

    public void CreateDirectory(string path) => Directory.CreateDirectory(path);

    // configfs removes the attribute files itself: rmdir (non-recursive) is the correct operation.
    public void DeleteDirectory(string path) => Directory.Delete(path, recursive: false);

    public string ReadAllText(string path) => File.ReadAllText(path);

    public Task<string> ReadAllTextAsync(string path, CancellationToken ct) => File.ReadAllTextAsync(path, ct);

    public Task<byte[]> ReadAllBytesAsync(string path, CancellationToken ct) => File.ReadAllBytesAsync(path, ct);

    public async Task WriteAllBytesAsync(string path, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        // configfs attributes must be written in one write() at offset 0, without truncation.
        var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1, FileOptions.None);
        await using (stream.ConfigureAwait(false))
        {
            await stream.WriteAsync(data, ct).ConfigureAwait(false);
        }
    }
}
