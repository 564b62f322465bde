import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import datasets, transforms
from torchvision.utils import save_image


def get_data_loader(batch_size):
    # MNIST Dataset
    transform = transforms.Compose([
        transforms.Resize(32),
        transforms.ToTensor(),
        transforms.Normalize(mean=(0.5,), std=(0.5,))])

    train_dataset = datasets.MNIST(root='./data', train=True, download=True, transform=transform)

    # Data Loader
    train_loader = torch.utils.data.DataLoader(dataset=train_dataset, batch_size=batch_size,
                                               shuffle=True, num_workers=4)
    return train_loader


class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()
        # Your code here
        self.model = nn.Sequential(
            nn.Conv2d(1, 16, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.MaxPool2d(2, 2, 0),
            nn.Conv2d(16, 32, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.MaxPool2d(2, 2, 0),
            nn.Conv2d(32, 64, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.MaxPool2d(2, 2, 0),
            nn.Conv2d(64, 128, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.MaxPool2d(4, 4, 0),
        )
        self.classifier = nn.Sequential(
            nn.Linear(128, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        """
        Input:
            x: (batch_size, 1, 32, 32) images
        Output:
            (batch_size) probabilities, in (0, 1)
        """
        # Your code here
        out = self.model(x)
        out = out.reshape(-1, 128)
        out = self.classifier(out)
        return out.reshape(-1)


class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()
        # Your code here
        self.model = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 1, 0),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(32, 16, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(16, 1, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z):
        """
        Input:
            z: (batch_size, 128) latent vectors
        Output:
            (batch_size, 1, 32, 32) fake images, in (-1, 1)
        """
        # Your code here
        return self.model(z.reshape(z.shape[0], 128, 1, 1))


class GAN(object):
    def __init__(self):
        self.device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        self.data_loader = get_data_loader(batch_size=64)
        self.D = Discriminator().to(self.device)
        self.G = Generator().to(self.device)
        self.D_optimizer = torch.optim.Adam(self.D.parameters(), lr=0.0002)
        self.G_optimizer = torch.optim.Adam(self.G.parameters(), lr=0.001)

    def calculate_V(self, x, z):
        """
        Input:
            x: (batch_size, 1, 32, 32) real images
            z: (batch_size, 128) latent vectors
        Output:
            a tensor with one element, the objective V
        """
        # Your code here
        criterion = nn.BCELoss()  # mean reduction
        real_out = self.D(x)
        fake_out = self.D(self.G(z))
        # BCE(p, 1) = -mean log p and BCE(p, 0) = -mean log(1 - p), so V is minus their sum
        loss_real = criterion(real_out, torch.ones_like(real_out))
        loss_fake = criterion(fake_out, torch.zeros_like(fake_out))
        return -(loss_real + loss_fake)

    def train(self, epochs):
        for epoch in range(epochs):
            print(f'Epoch {epoch}')
            for i, (x, _) in enumerate(self.data_loader):
                x = x.to(self.device)
                z = torch.randn(64, 128).to(self.device)

                # Training D
                self.D_optimizer.zero_grad()
                V = self.calculate_V(x, z)
                (-V).backward()
                self.D_optimizer.step()

                # Training G
                self.G_optimizer.zero_grad()
                V = self.calculate_V(x, z)
                V.backward()
                self.G_optimizer.step()

                if i % 100 == 0:
                    print(f'Iteration {i}, V = {V.item()}')
            self.visualize(f'Epoch {epoch}.png')

    def visualize(self, save_path):
        # sample some z, generate fake images and save them
        z = torch.randn(64, 128).to(self.device)
        fake_images = self.G(z)
        save_image(fake_images, save_path, nrow=8, normalize=True)


if __name__ == '__main__':
    gan = GAN()
    gan.train(epochs=10)
