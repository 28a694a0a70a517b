using System.Collections.Immutable;
using System.Text;
using NearML.Core;

namespace NearML.Training.Data;

/// <summary>
/// A character-level corpus: the vocabulary is the sorted set of distinct Unicode scalar values (code points) in the
/// text, each character is encoded as its index in the vocabulary, the first 90 % of the tokens are the training
/// split and the last 10 % the validation split (<c>n = ⌊0.9·len⌋</c>, as in nanoGPT's char-level recipe).
/// </summary>
public sealed class TextDataset
{
    private readonly Dictionary<int, int> _index;

    /// <summary>Builds the dataset from text.</summary>
    /// <param name="text">The corpus (at least two distinct tokens' worth).</param>
    /// <param name="trainFraction">The fraction of tokens in the training split.</param>
    public TextDataset(string text, double trainFraction = 0.9)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!(trainFraction > 0 && trainFraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(trainFraction), trainFraction, "The training fraction must be in (0, 1).");
        }

        var runes = new List<int>(text.Length);
        foreach (var r in text.EnumerateRunes())
        {
            runes.Add(r.Value);
        }

        if (runes.Count < 2)
        {
            throw new ArgumentException($"The text has {runes.Count} characters; at least 2 are needed.", nameof(text));
        }

        var vocab = runes.Distinct().Order().ToArray();
        _index = new Dictionary<int, int>(vocab.Length);
        for (var i = 0; i < vocab.Length; i++)
        {
            _index[vocab[i]] = i;
        }

        Vocabulary = [.. vocab.Select(v => new Rune(v))];
        Tokens = new int[runes.Count];
        for (var i = 0; i < Tokens.Length; i++)
        {
            Tokens[i] = _index[runes[i]];
        }

        TrainLength = (int)(trainFraction * Tokens.Length);
    }

    /// <summary>Reads a UTF-8 text file and builds the dataset.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The dataset.</returns>
    /// <exception cref="DatasetNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataFormatException">The file is not valid UTF-8.</exception>
    public static TextDataset FromFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new DatasetNotFoundException(path, $"Text corpus '{path}' does not exist.");
        }

        var bytes = File.ReadAllBytes(path);
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw new InvalidDataFormatException(path, ex.Index, "the file is not valid UTF-8.", ex);
        }

        return new TextDataset(text);
    }

    /// <summary>Gets the vocabulary, sorted by code point; a token is an index into it.</summary>
    public ImmutableArray<Rune> Vocabulary { get; }

    /// <summary>Gets the number of distinct tokens.</summary>
    public int VocabularySize => Vocabulary.Length;

    /// <summary>Gets the whole corpus as tokens.</summary>
    public int[] Tokens { get; }

    /// <summary>Gets the number of tokens in the training split.</summary>
    public int TrainLength { get; }

    /// <summary>Gets the training split (the first <see cref="TrainLength"/> tokens).</summary>
    public ReadOnlyMemory<int> Train => Tokens.AsMemory(0, TrainLength);

    /// <summary>Gets the validation split (the remaining tokens).</summary>
    public ReadOnlyMemory<int> Validation => Tokens.AsMemory(TrainLength);

    /// <summary>Encodes text with this vocabulary.</summary>
    /// <param name="text">The text.</param>
    /// <returns>The tokens.</returns>
    /// <exception cref="ArgumentException">A character is not in the vocabulary (the message names it and its position).</exception>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var result = new List<int>(text.Length);
        var position = 0;
        foreach (var r in text.EnumerateRunes())
        {
            if (!_index.TryGetValue(r.Value, out var t))
            {
                throw new ArgumentException($"Character U+{r.Value:X4} at position {position} is not in the vocabulary.", nameof(text));
            }

            result.Add(t);
            position += r.Utf16SequenceLength;
        }

        return [.. result];
    }

    /// <summary>Decodes tokens to text.</summary>
    /// <param name="tokens">The tokens.</param>
    /// <returns>The text.</returns>
    public string Decode(ReadOnlySpan<int> tokens)
    {
        var sb = new StringBuilder(tokens.Length);
        for (var i = 0; i < tokens.Length; i++)
        {
            var t = tokens[i];
            if ((uint)t >= (uint)Vocabulary.Length)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), t, $"Token #{i} is {t}, outside [0, {Vocabulary.Length}).");
            }

            sb.Append(Vocabulary[t].ToString());
        }

        return sb.ToString();
    }
}
