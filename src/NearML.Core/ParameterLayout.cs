using System.Collections.Immutable;
using System.Text;

namespace NearML.Core;

/// <summary>The name, shape and position of one tensor inside a <see cref="ParameterLayout"/>.</summary>
/// <param name="Name">The tensor's unique name, e.g. <c>blocks.0.attn.qkv.weight</c>.</param>
/// <param name="Shape">The tensor's dimensions, outermost first.</param>
/// <param name="Offset">The index of its first element in the contiguous buffer.</param>
/// <param name="Length">Its number of elements (the product of <paramref name="Shape"/>).</param>
public sealed record TensorEntry(string Name, ImmutableArray<int> Shape, long Offset, int Length)
{
    /// <summary>Gets the shape as text, e.g. <c>[128, 64]</c>.</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// The ordered names and shapes of a <see cref="ParameterSet"/>. Immutable and shareable: sets with equal layouts
/// can be combined element-wise.
/// </summary>
public sealed class ParameterLayout : IEquatable<ParameterLayout>
{
    private readonly Dictionary<string, int> _index;
    private string? _fingerprint;

    /// <summary>Creates a layout from (name, shape) pairs in order.</summary>
    /// <param name="tensors">The tensors, in order. Names must be unique and non-empty; dimensions positive.</param>
    /// <exception cref="ArgumentException">A name is empty or repeated, or a dimension is not positive.</exception>
    public ParameterLayout(IEnumerable<(string Name, int[] Shape)> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var entries = ImmutableArray.CreateBuilder<TensorEntry>();
        _index = new Dictionary<string, int>(StringComparer.Ordinal);
        long offset = 0;
        foreach (var (name, shape) in tensors)
        {
            ArgumentException.ThrowIfNullOrEmpty(name, nameof(tensors));
            ArgumentNullException.ThrowIfNull(shape, nameof(tensors));
            long length = 1;
            foreach (var d in shape)
            {
                if (d <= 0)
                {
                    throw new ArgumentException($"Tensor '{name}' has a non-positive dimension in shape [{string.Join(", ", shape)}].", nameof(tensors));
                }

                length *= d;
            }

            if (length > Array.MaxLength)
            {
                throw new ArgumentException($"Tensor '{name}' has {length} elements; at most {Array.MaxLength} are supported.", nameof(tensors));
            }

            if (!_index.TryAdd(name, entries.Count))
            {
                throw new ArgumentException($"Tensor name '{name}' appears twice.", nameof(tensors));
            }

            entries.Add(new TensorEntry(name, [.. shape], offset, (int)length));
            offset += length;
        }

        if (offset > Array.MaxLength)
        {
            throw new ArgumentException($"The layout holds {offset} elements; at most {Array.MaxLength} fit one buffer.", nameof(tensors));
        }

        Entries = entries.ToImmutable();
        TotalLength = offset;
    }

    /// <summary>Gets the tensors in order.</summary>
    public ImmutableArray<TensorEntry> Entries { get; }

    /// <summary>Gets the total number of float elements.</summary>
    public long TotalLength { get; }

    /// <summary>Gets the number of tensors.</summary>
    public int Count => Entries.Length;

    /// <summary>Gets the entry with the given name.</summary>
    /// <param name="name">The tensor name.</param>
    /// <exception cref="KeyNotFoundException">No tensor has that name.</exception>
    public TensorEntry this[string name] =>
        _index.TryGetValue(name, out var i) ? Entries[i] : throw new KeyNotFoundException($"No tensor named '{name}' in this layout.");

    /// <summary>Tries to find the entry with the given name.</summary>
    /// <param name="name">The tensor name.</param>
    /// <param name="entry">The entry, when found.</param>
    /// <returns><see langword="true"/> when found.</returns>
    public bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TensorEntry? entry)
    {
        if (_index.TryGetValue(name, out var i))
        {
            entry = Entries[i];
            return true;
        }

        entry = null;
        return false;
    }

    /// <summary>Throws a <see cref="LayoutMismatchException"/> naming the first difference if <paramref name="other"/> differs.</summary>
    /// <param name="other">The layout to compare with.</param>
    public void EnsureSameAs(ParameterLayout other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (ReferenceEquals(this, other))
        {
            return;
        }

        var n = Math.Min(Count, other.Count);
        for (var i = 0; i < n; i++)
        {
            var a = Entries[i];
            var b = other.Entries[i];
            if (a.Name != b.Name || !a.Shape.SequenceEqual(b.Shape))
            {
                throw new LayoutMismatchException($"Parameter layouts differ at tensor #{i}: '{a.Name}' {a.ShapeText} vs '{b.Name}' {b.ShapeText}.");
            }
        }

        if (Count != other.Count)
        {
            throw new LayoutMismatchException($"Parameter layouts differ in tensor count: {Count} vs {other.Count}.");
        }
    }

    /// <inheritdoc/>
    public bool Equals(ParameterLayout? other)
    {
        if (other is null)
        {
            return false;
        }

        if (ReferenceEquals(this, other))
        {
            return true;
        }

        if (Count != other.Count)
        {
            return false;
        }

        for (var i = 0; i < Count; i++)
        {
            if (Entries[i].Name != other.Entries[i].Name || !Entries[i].Shape.SequenceEqual(other.Entries[i].Shape))
            {
                return false;
            }
        }

        return true;
    }

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as ParameterLayout);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var e in Entries)
        {
            h.Add(e.Name, StringComparer.Ordinal);
            foreach (var d in e.Shape)
            {
                h.Add(d);
            }
        }

        return h.ToHashCode();
    }

    /// <summary>
    /// Gets the layout fingerprint: the lower-case hex SHA-256 of one line per tensor, in order,
    /// <c>name&lt;TAB&gt;f32&lt;TAB&gt;d0,d1,…&lt;LF&gt;</c>. Equal layouts (names, shapes, element type) have equal
    /// fingerprints whatever engine built them; a worker whose model fingerprint differs from the job's is refused at join.
    /// </summary>
    public string Fingerprint => _fingerprint ??= ComputeFingerprint();

    private string ComputeFingerprint()
    {
        var sb = new StringBuilder();
        foreach (var e in Entries)
        {
            sb.Append(e.Name).Append('\t').Append("f32").Append('\t');
            for (var i = 0; i < e.Shape.Length; i++)
            {
                if (i > 0)
                {
                    sb.Append(',');
                }

                sb.Append(e.Shape[i].ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            sb.Append('\n');
        }

        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
    }

    /// <inheritdoc/>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(Count).Append(" tensors, ").Append(TotalLength).Append(" elements");
        return sb.ToString();
    }
}
