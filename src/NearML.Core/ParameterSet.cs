using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace NearML.Core;

/// <summary>
/// Ordered, named float32 tensors in one contiguous buffer: the unit NearML trains, compresses, aggregates and
/// checkpoints. Element-wise arithmetic runs on the whole buffer with SIMD (<see cref="TensorPrimitives"/>).
/// </summary>
/// <remarks>Not thread-safe for concurrent writers; views (<see cref="GetSpan(string)"/>) alias the buffer.</remarks>
public sealed class ParameterSet
{
    private readonly float[] _data;

    /// <summary>Creates a zero-filled set with the given layout.</summary>
    /// <param name="layout">The names and shapes.</param>
    public ParameterSet(ParameterLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        Layout = layout;
        _data = new float[layout.TotalLength];
    }

    /// <summary>Creates a set over an existing buffer (no copy).</summary>
    /// <param name="layout">The names and shapes.</param>
    /// <param name="data">The buffer; its length must equal <see cref="ParameterLayout.TotalLength"/>.</param>
    public ParameterSet(ParameterLayout layout, float[] data)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(data);
        if (data.Length != layout.TotalLength)
        {
            throw new ArgumentException($"Buffer has {data.Length} elements but the layout needs {layout.TotalLength}.", nameof(data));
        }

        Layout = layout;
        _data = data;
    }

    /// <summary>Creates a zero-filled set from (name, shape) pairs.</summary>
    /// <param name="tensors">The tensors, in order.</param>
    /// <returns>The new set.</returns>
    public static ParameterSet Create(params (string Name, int[] Shape)[] tensors) => new(new ParameterLayout(tensors));

    /// <summary>Gets the layout (names, shapes, offsets).</summary>
    public ParameterLayout Layout { get; }

    /// <summary>Gets the whole contiguous buffer.</summary>
    public Span<float> Data => _data;

    /// <summary>Gets the underlying array (for APIs that need one; it aliases <see cref="Data"/>).</summary>
    public float[] Buffer => _data;

    /// <summary>Gets the total number of elements.</summary>
    public int Length => _data.Length;

    /// <summary>Gets a writable view of one tensor.</summary>
    /// <param name="name">The tensor name.</param>
    /// <returns>The span aliasing the tensor's elements.</returns>
    public Span<float> GetSpan(string name)
    {
        var e = Layout[name];
        return _data.AsSpan((int)e.Offset, e.Length);
    }

    /// <summary>Gets a writable view of the tensor at <paramref name="index"/>.</summary>
    /// <param name="index">The tensor's position in the layout.</param>
    /// <returns>The span aliasing the tensor's elements.</returns>
    public Span<float> GetSpan(int index)
    {
        var e = Layout.Entries[index];
        return _data.AsSpan((int)e.Offset, e.Length);
    }

    /// <summary>Gets a writable view of one tensor as <see cref="Memory{T}"/>.</summary>
    /// <param name="name">The tensor name.</param>
    /// <returns>The memory aliasing the tensor's elements.</returns>
    public Memory<float> GetMemory(string name)
    {
        var e = Layout[name];
        return _data.AsMemory((int)e.Offset, e.Length);
    }

    /// <summary>Creates a deep copy.</summary>
    /// <returns>A new set with the same layout and values.</returns>
    public ParameterSet Clone() => new(Layout, (float[])_data.Clone());

    /// <summary>Creates a zero-filled set with the same layout.</summary>
    /// <returns>A new set.</returns>
    public ParameterSet CreateZeros() => new(Layout);

    /// <summary>Copies the values of <paramref name="source"/> into this set.</summary>
    /// <param name="source">A set with the same layout.</param>
    public void CopyFrom(ParameterSet source)
    {
        EnsureCompatible(source);
        source._data.AsSpan().CopyTo(_data);
    }

    /// <summary>Sets every element to zero.</summary>
    public void Clear() => Array.Clear(_data);

    /// <summary>this ← this + <paramref name="alpha"/>·<paramref name="x"/>.</summary>
    /// <param name="alpha">The scale of <paramref name="x"/>.</param>
    /// <param name="x">A set with the same layout.</param>
    public void Axpy(float alpha, ParameterSet x)
    {
        EnsureCompatible(x);
        TensorPrimitives.MultiplyAdd(x._data, alpha, _data, _data);
    }

    /// <summary>this ← <paramref name="alpha"/>·this.</summary>
    /// <param name="alpha">The scale.</param>
    public void Scale(float alpha) => TensorPrimitives.Multiply(_data, alpha, _data);

    /// <summary>this ← this + <paramref name="x"/>.</summary>
    /// <param name="x">A set with the same layout.</param>
    public void Add(ParameterSet x)
    {
        EnsureCompatible(x);
        TensorPrimitives.Add(_data, x._data, _data);
    }

    /// <summary>this ← <paramref name="a"/> − <paramref name="b"/>.</summary>
    /// <param name="a">The minuend.</param>
    /// <param name="b">The subtrahend.</param>
    public void SetDifference(ParameterSet a, ParameterSet b)
    {
        EnsureCompatible(a);
        EnsureCompatible(b);
        TensorPrimitives.Subtract(a._data, b._data, _data);
    }

    /// <summary>this ← this − <paramref name="x"/>.</summary>
    /// <param name="x">A set with the same layout.</param>
    public void Subtract(ParameterSet x)
    {
        EnsureCompatible(x);
        TensorPrimitives.Subtract(_data, x._data, _data);
    }

    /// <summary>Computes the dot product with another set, accumulated in double precision.</summary>
    /// <param name="other">A set with the same layout.</param>
    /// <returns>Σ thisᵢ·otherᵢ.</returns>
    public double Dot(ParameterSet other)
    {
        EnsureCompatible(other);
        const int Block = 4096;
        double acc = 0;
        for (var i = 0; i < _data.Length; i += Block)
        {
            var n = Math.Min(Block, _data.Length - i);
            acc += TensorPrimitives.Dot(_data.AsSpan(i, n), other._data.AsSpan(i, n));
        }

        return acc;
    }

    /// <summary>Computes the Euclidean norm, accumulated in double precision.</summary>
    /// <returns>‖this‖₂.</returns>
    public double Norm()
    {
        const int Block = 4096;
        double acc = 0;
        for (var i = 0; i < _data.Length; i += Block)
        {
            var s = _data.AsSpan(i, Math.Min(Block, _data.Length - i));
            acc += TensorPrimitives.Dot(s, s);
        }

        return Math.Sqrt(acc);
    }

    /// <summary>Finds the first element that is NaN or infinite.</summary>
    /// <returns>The (tensor name, index within the tensor) of the first non-finite element, or <see langword="null"/>.</returns>
    public (string Tensor, int Index)? FindNonFinite()
    {
        foreach (var e in Layout.Entries)
        {
            var s = _data.AsSpan((int)e.Offset, e.Length);
            for (var i = 0; i < s.Length; i++)
            {
                if (!float.IsFinite(s[i]))
                {
                    return (e.Name, i);
                }
            }
        }

        return null;
    }

    /// <summary>Gets a value indicating whether every element is finite.</summary>
    public bool IsFinite => FindNonFinite() is null;

    /// <summary>Computes SHA-256 over the layout (names, shapes) and the little-endian element bytes.</summary>
    /// <returns>The 32-byte hash; equal sets have equal hashes.</returns>
    public byte[] ComputeHash()
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> four = stackalloc byte[4];
        foreach (var e in Layout.Entries)
        {
            h.AppendData(System.Text.Encoding.UTF8.GetBytes(e.Name));
            h.AppendData([0]);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(four, e.Shape.Length);
            h.AppendData(four);
            foreach (var d in e.Shape)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(four, d);
                h.AppendData(four);
            }
        }

        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("NearML requires a little-endian platform.");
        }

        h.AppendData(MemoryMarshal.AsBytes(_data.AsSpan()));
        return h.GetHashAndReset();
    }

    /// <summary>Throws <see cref="LayoutMismatchException"/> unless <paramref name="other"/> has the same layout.</summary>
    /// <param name="other">The set to check.</param>
    public void EnsureCompatible(ParameterSet other)
    {
        ArgumentNullException.ThrowIfNull(other);
        Layout.EnsureSameAs(other.Layout);
    }
}
